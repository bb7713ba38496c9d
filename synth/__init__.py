"""Synthetic CPM-RadPath cohorts (simulated anatomy and tumours, never patient data).

Not preprocessing: nothing here runs on a user's case. It writes the embedded default data set for
the demo, the tests and the benchmarks, in the exact release layout that `preprocess` reads.
"""
