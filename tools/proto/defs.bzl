"""Proto code generation with the venv's grpcio-tools (Bazel's proto rules would download)."""

load("@venv//:defs.bzl", "VENV_BIN", "VENV_PYTHON")

def _stem(src):
    return src[:-len(".proto")]

# google/rpc/*.proto (Status, ErrorInfo) as googleapis-common-protos installs them in
# the venv, whose generated modules (google.rpc.status_pb2) the services import too.
_GOOGLEAPIS = "-I$$(%s -c 'import google.rpc, os; print(os.path.dirname(os.path.dirname(list(google.rpc.__path__)[0])))')" % VENV_PYTHON

def py_grpc_library(name, srcs, deps = [], visibility = None):
    """protoc-generated protobuf (_pb2) and grpc (_pb2_grpc) modules for srcs.

    Sources are paths below this package, which is the proto root: `bourse/x/v1/y.proto`
    becomes the module `bourse.x.v1.y_pb2`.
    """
    outs = []
    for src in srcs:
        outs += [_stem(src) + "_pb2.py", _stem(src) + "_pb2.pyi", _stem(src) + "_pb2_grpc.py"]
    native.genrule(
        name = name + "_gen",
        srcs = srcs,
        outs = outs,
        cmd = " ".join([
            VENV_PYTHON,
            "-m grpc_tools.protoc",
            "-I" + native.package_name(),
            _GOOGLEAPIS,
            "--python_out=$(RULEDIR)",
            "--pyi_out=$(RULEDIR)",
            "--grpc_python_out=$(RULEDIR)",
            "$(SRCS)",
        ]),
    )
    native.py_library(
        name = name,
        srcs = [o for o in outs if o.endswith(".py")],
        data = [o for o in outs if o.endswith(".pyi")],
        imports = ["."],
        deps = deps,
        visibility = visibility,
    )

def betterproto2_sources(name, srcs, package, outs, proto_root, out_dir, visibility = None):
    """betterproto2 dataclasses for srcs, generated as `out_dir/package/...`.

    betterproto2 writes relative imports, so its whole tree (bourse/..., google/...,
    message_pool.py) lives under one top-level package and never collides with the
    protoc-generated `bourse` package used by the services. The SDK ships a committed
    copy of this tree (so `pip install` needs no protoc); a test holds it equal.
    """
    native.genrule(
        name = name,
        srcs = srcs,
        outs = [out_dir + "/" + package + "/" + o for o in outs],
        cmd = " ".join([
            "PATH=%s:$$PATH" % VENV_BIN,  # the plugin formats its output with ruff
            VENV_PYTHON,
            "-m grpc_tools.protoc",
            "-I" + proto_root,
            _GOOGLEAPIS,
            "--python_betterproto2_out=$(RULEDIR)/%s/%s" % (out_dir, package),
            "$(SRCS)",
        ]),
        visibility = visibility,
    )
