"""Synthetic CPM-RadPath cohorts (simulated anatomy and tumours, never patient data).

Not preprocessing: nothing here runs on a user's case. It writes the embedded default data set for
the demo, the tests and the benchmarks, in the exact release layout that `preprocess` reads.
Each case's look (tumour conspicuity, contrasts, scanner effects, file format) is drawn from a named
`synth.style.Style` (`STYLES`: broad, train, heldout, brats, subtle, legacy), so a model can be
trained on one part of the space and tested on another.

    anatomy.py  brain, white-matter hyperintensities, normally enhancing structures
    tumors.py   lesions with the signs of A, O and G
    render.py   contrasts, blur, bias, noise, the solved conspicuity, file quirks
    style.py    the randomisation ranges
    cohort.py   plan, synthesize_case, write_synthetic_cohort (release layout)
    cli.py      `radpath synth`
"""
