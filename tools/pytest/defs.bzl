"""pytest_test: a py_test that runs pytest over its sources with the repo's venv."""

def pytest_test(name, srcs, deps = [], data = [], args = [], size = "small", tags = [], **kwargs):
    native.py_test(
        name = name,
        srcs = srcs + ["//tools/pytest:pytest_main.py"],
        main = "//tools/pytest:pytest_main.py",
        deps = deps,
        data = data,
        args = args + ["$(location %s)" % s for s in srcs],
        size = size,
        tags = tags,
        python_version = "PY3",
        **kwargs
    )
