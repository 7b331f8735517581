"""gunicorn settings used by every way this project is served: `make run`, the benchmark
harness and the deployment command of docs/operations.md (gunicorn reads
./gunicorn.conf.py from the folder it starts in; `-c gunicorn.conf.py` names it).
Command-line options (bind, workers, threads) still override these.

Requests gunicorn refuses before Django (its defaults, kept and written down here):
a request line over 4094 bytes → 414; a header line over 8190 bytes or more than
100 headers → 431; a NUL or other invalid byte in a header, a bad method or HTTP
version → 400. Under /api/ (or when the path could not be read) the answer is JSON,
see asksage_admin/gunicorn_errors.py.
"""

limit_request_line = 4094
limit_request_field_size = 8190
limit_request_fields = 100


def post_worker_init(worker):
    from asksage_admin.gunicorn_errors import install

    install(worker)
