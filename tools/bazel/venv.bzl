"""Repository rules that expose machine-local things to the offline build.

venv_repository: the repo's virtualenv as the Python toolchain, plus nanobind's sources
and the Python headers as cc_library targets (for the engine extension).
system_gtest: GoogleTest from Debian's libgtest-dev.
"""

_VENV_BUILD = """
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

package(default_visibility = ["//visibility:public"])

exports_files(["defs.bzl"])

py_runtime(
    name = "py3_runtime",
    interpreter_path = "{python}",
    python_version = "PY3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "python_toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)

cc_library(
    name = "python_headers",
    hdrs = glob(["python_include/**/*.h"]),
    includes = ["python_include"],
)

cc_library(
    name = "nanobind",
    srcs = glob(
        ["nanobind/src/*.cpp", "nanobind/src/*.h"],
        exclude = [
            "nanobind/src/nb_combined.cpp",
            "nanobind/src/nb_backend.cpp",
            "nanobind/src/nb_ft.cpp",
        ],
    ),
    hdrs = glob([
        "nanobind/include/**/*.h",
        "nanobind/ext/robin_map/include/**/*.h",
    ]),
    copts = ["-std=c++17", "-fvisibility=hidden", "-O2", "-fno-strict-aliasing"],
    includes = ["nanobind/include", "nanobind/ext/robin_map/include"],
    deps = [":python_headers"],
)
"""

def _venv_repository_impl(ctx):
    root = str(ctx.path(Label("@//:WORKSPACE")).dirname)
    python = root + "/" + ctx.attr.venv + "/bin/python3"
    if not ctx.path(python).exists:
        fail("no virtualenv at %s: run `make setup` first" % python)
    probe = ctx.execute([python, "-c", "\n".join([
        "import sys, sysconfig, os, nanobind",
        "assert sys.prefix != sys.base_prefix, 'not a virtualenv'",
        "print(os.path.dirname(nanobind.source_dir()))",
        "print(sysconfig.get_paths()['include'])",
    ])])
    if probe.return_code != 0:
        fail("probing the virtualenv failed: " + probe.stderr)
    nanobind_dir, include_dir = probe.stdout.strip().split("\n")
    ctx.symlink(nanobind_dir, "nanobind")
    ctx.symlink(include_dir, "python_include")
    ctx.file("BUILD", _VENV_BUILD.format(python = python))
    ctx.file("defs.bzl", "VENV_PYTHON = %r\nVENV_BIN = %r\nWHEELHOUSE = %r\n" % (
        python,
        root + "/" + ctx.attr.venv + "/bin",
        root + "/.tools/wheelhouse",  # the SDK's dependencies as wheels (tools/setup.sh)
    ))

venv_repository = repository_rule(
    implementation = _venv_repository_impl,
    attrs = {"venv": attr.string(mandatory = True)},
    # Re-probe when the lock changes (a new nanobind or Python).
    environ = ["BOURSE_VENV_STAMP"],
    local = True,
)

_GTEST_BUILD = """
package(default_visibility = ["//visibility:public"])

cc_library(
    name = "gtest",
    srcs = ["lib/libgtest.a"],
    hdrs = glob(["include/gtest/**/*.h"]),
    includes = ["include"],
    linkopts = ["-pthread"],
)

cc_library(
    name = "gtest_main",
    srcs = ["lib/libgtest_main.a"],
    deps = [":gtest"],
)
"""

def _system_gtest_impl(ctx):
    found = ctx.execute(["sh", "-c", "ls /usr/lib/*/libgtest.a /usr/lib/libgtest.a 2>/dev/null | head -n 1"])
    lib = found.stdout.strip()
    if not lib:
        fail("GoogleTest not found: run `make setup` (installs libgtest-dev)")
    libdir = lib.rsplit("/", 1)[0]
    ctx.symlink(libdir + "/libgtest.a", "lib/libgtest.a")
    ctx.symlink(libdir + "/libgtest_main.a", "lib/libgtest_main.a")
    ctx.symlink("/usr/include/gtest", "include/gtest")
    ctx.file("BUILD", _GTEST_BUILD)

system_gtest = repository_rule(implementation = _system_gtest_impl, local = True)
