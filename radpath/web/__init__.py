"""The RadPath web application: a 3D brain viewer, login, upload of the four sequences, results.

One more client of the serving stack: uploads are checked with `preprocess` and classified through
`client.grpc_client.GlioClient` by workers that take jobs from the database (never inside a request).

Modules, in the order a request meets them: `settings` (typed configuration), `middleware` (body
limit, Origin check, security headers), `deps` (the one gate: current session, owned case), `pages`
and `api` (routers: HTML pages and the JSON API), `login` (the one login helper), `case_ops` (what
both routers do with a case), `views` (templates, error pages), `auth` (passwords, sessions, CSRF,
throttling without lock-out), `audit` (append-only log), `uploads` (streamed, capped multipart
parsing + the preprocess checks), `upload_check` (those checks in a short-lived child process, so
the site never decodes a volume), `safe_text` (no bidi or invisible characters echoed), `jobs`
(queue with leases, users served in turn, per-user cap), `db` (tables, engine), `worker` (runs
jobs; waits out a model-server outage), `lifecycle` (workers and checks stop with the site),
`shutdown_signals` (SIGTERM stops a worker without a lock in a signal handler),
`artefacts` (slice images and the 3D overlay of a result), `result_view` (what the pages say about
a result), `model_card` (card as safe HTML, whether the model takes age), `app` (assembles the app),
`cli` (`radpath web`, `radpath web-worker`, `radpath users`).
"""
