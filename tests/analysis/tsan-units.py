#!/usr/bin/env python3
# tsan-units.py - build unit-test executables of a ThreadSanitizer build
# against the Criterion stand-in (tests/analysis/tsan), which can run under
# TSan where Criterion cannot (why: tests/analysis/tsan/criterion/criterion.h).
#
#   tsan-units.py BUILD_DIR OUT_DIR TARGET...
#
# TARGET is a meson executable as build.ninja names it, for example
# tests/unit/unit-tests. Its objects are compiled again with the commands of
# BUILD_DIR/compile_commands.json (same sources, flags and -fsanitize=thread)
# with the stand-in's folder first on the include path and the outputs moved
# to OUT_DIR; then they are linked with tests/analysis/tsan/runner.c and the
# target's own link arguments from build.ninja, less libcriterion. So the
# sources, flags and libraries follow meson.build; nothing is listed twice.
# Prints the path of each executable it made.
import json
import os
import shlex
import subprocess
import sys

HERE = os.path.dirname(os.path.realpath(__file__))
SHIM = os.path.join(HERE, "tsan")


def link_statement(build, target):
    """The objects and LINK_ARGS of `build TARGET: c_LINKER ...`."""
    with open(os.path.join(build, "build.ninja"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    head = f"build {target}: c_LINKER "
    for i, line in enumerate(lines):
        if line.startswith(head):
            objs = line[len(head):].split(" | ")[0].split()
            for follow in lines[i + 1:]:
                if not follow.startswith(" "):
                    break
                key, _, value = follow.strip().partition(" = ")
                if key == "LINK_ARGS":
                    return objs, shlex.split(value)
            return objs, []
    sys.exit(f"tsan-units.py: no link statement for {target} in {build}/build.ninja")


def compile_commands(build):
    with open(os.path.join(build, "compile_commands.json"), encoding="utf-8") as f:
        return {e["output"]: e for e in json.load(f)}


def without_depfile(args):
    """Drop -MD, -MQ X, -MF X: they would rewrite meson's own .d files."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("-MQ", "-MF", "-MT"):
            skip = True
        elif a != "-MD":
            out.append(a)
    return out


def run(args, cwd):
    proc = subprocess.run(args, cwd=cwd, check=False)
    if proc.returncode != 0:
        sys.exit(f"tsan-units.py: failed: {shlex.join(args)}")


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: tsan-units.py BUILD_DIR OUT_DIR TARGET...")
    build = os.path.realpath(sys.argv[1])
    out_dir = os.path.realpath(sys.argv[2])
    commands = compile_commands(build)
    os.makedirs(out_dir, exist_ok=True)

    for target in sys.argv[3:]:
        objs, link_args = link_statement(build, target)
        name = os.path.basename(target)
        new_objs, compiler, flags = [], None, []
        for obj in objs:
            entry = commands.get(obj)
            if entry is None:
                sys.exit(f"tsan-units.py: {obj} is not in compile_commands.json")
            args = without_depfile(shlex.split(entry["command"]))
            compiler = args[0]
            new_obj = os.path.join(out_dir, name + ".p", os.path.basename(obj))
            os.makedirs(os.path.dirname(new_obj), exist_ok=True)
            args = [args[0], "-I" + SHIM] + args[1:]
            args[args.index("-o") + 1] = new_obj
            flags = [a for a in args[1:] if a.startswith(("-fsanitize", "-std=", "-O", "-g", "-pthread"))]
            run(args, entry["directory"])
            new_objs.append(new_obj)
        runner = os.path.join(out_dir, name + ".p", "runner.o")
        run([compiler, "-I" + SHIM, *flags, "-D_GNU_SOURCE", "-c", os.path.join(SHIM, "runner.c"),
             "-o", runner], build)
        exe = os.path.join(out_dir, name)
        link = [a for a in link_args if "libcriterion" not in a and a != "-lcriterion"]
        run([compiler, *new_objs, runner, "-o", exe, *link], build)
        print(exe)


if __name__ == "__main__":
    main()
