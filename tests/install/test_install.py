#!/usr/bin/python3
"""test_install.py: `meson install` of a build directory puts the binary, the man pages, the
examples and (with -Dsendmail_links=true) the sendmail/mailq links where they belong, and the
installed pages are clean under `mandoc -T lint -W error`, and the installed systemd unit passes
`systemd-analyze verify` without a word and scores an exposure of at most 2.0 under
`systemd-analyze security --offline=true`.

    /usr/bin/python3 tests/install/test_install.py MESON SOURCE_DIR BUILD_DIR [MANDOC]

Installs into a temporary DESTDIR only; the build directory is read, never reconfigured. The
links are installed for real only when the build directory has sendmail_links on; otherwise a
scratch directory is configured with it on (configure only, nothing is compiled) and
`meson introspect --installed` is read instead.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

MESON = SOURCE = BUILD = MANDOC = ""
PAGES = {"man8": "mailferry.8", "man5": "mailferry.toml.5"}
EXAMPLES = ["mailferry.toml", "mailferry-minimal.toml"]
UNIT = "mailferry.service"
MAX_EXPOSURE = 2.0


def run(*args, env=None, timeout=120):
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout)


def introspect(build_dir, what):
    p = run(MESON, "introspect", build_dir, what)
    if p.returncode != 0:
        raise AssertionError(f"meson introspect {what} failed: {p.stderr}")
    return json.loads(p.stdout)


def options(build_dir):
    return {o["name"]: o["value"] for o in introspect(build_dir, "--buildoptions")}


def link_paths(opts):
    """Where the three links go, as absolute paths (before DESTDIR)."""
    prefix = opts["prefix"]
    return {
        "sendmail (sbindir)": os.path.join(prefix, opts["sbindir"], "sendmail"),
        "sendmail (lib)": os.path.join(prefix, "lib", "sendmail"),
        "mailq": os.path.join(prefix, opts["bindir"], "mailq"),
    }


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="mailferry-install-")
        cls.addClassCleanup(shutil.rmtree, cls.tmp, ignore_errors=True)
        cls.destdir = os.path.join(cls.tmp, "dest")
        cls.opts = options(BUILD)
        # --no-rebuild: meson test has already built everything; the install must not race it.
        p = run(MESON, "install", "-C", BUILD, "--no-rebuild", "--destdir", cls.destdir)
        cls.install_output = p.stdout + p.stderr
        cls.install_rc = p.returncode

    def staged(self, path):
        """An absolute install path inside the DESTDIR."""
        return os.path.join(self.destdir, path.lstrip("/"))

    def under_prefix(self, *parts):
        return self.staged(os.path.join(self.opts["prefix"], *parts))

    def test_install_succeeds_inside_destdir(self):
        self.assertEqual(self.install_rc, 0, self.install_output)
        prefix = self.opts["prefix"]
        for root, dirs, files in os.walk(self.destdir):
            for name in dirs + files:
                path = "/" + os.path.relpath(os.path.join(root, name), self.destdir)
                self.assertTrue(path.startswith(prefix) or prefix.startswith(path),
                                f"{path} installed outside the prefix {prefix}")

    def test_binary_in_bindir(self):
        binary = self.under_prefix(self.opts["bindir"], "mailferry")
        self.assertTrue(os.access(binary, os.X_OK), f"no executable {binary}")
        p = run(binary, "--version")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith("mailferry "), p.stdout)

    def test_examples_in_doc_dir(self):
        for name in EXAMPLES:
            path = self.under_prefix(self.opts["datadir"], "doc", "mailferry", name)
            self.assertTrue(os.path.isfile(path), f"no {path}")
            # Each sample must be a configuration the loader accepts.
            binary = self.under_prefix(self.opts["bindir"], "mailferry")
            p = run(binary, "check-config", "-c", path)
            self.assertEqual(p.returncode, 0, f"{name}: {p.stderr}")

    def man_pages(self):
        return [self.under_prefix(self.opts["mandir"], section, page) for section, page in PAGES.items()]

    def test_man_pages_in_mandir(self):
        installed = introspect(BUILD, "--installed").values()
        if not any(p.endswith("/mailferry.8") for p in installed):
            if shutil.which("scdoc"):
                self.fail("scdoc is installed but the build directory has no man pages: reconfigure it")
            self.skipTest("scdoc was not found when the build directory was configured")
        for page in self.man_pages():
            self.assertTrue(os.path.isfile(page), f"no {page}")

    def test_man_pages_lint_clean(self):
        if not MANDOC:
            self.skipTest("mandoc not found")
        pages = [p for p in self.man_pages() if os.path.isfile(p)]
        if not pages:
            self.skipTest("no man pages installed (no scdoc)")
        p = run(MANDOC, "-T", "lint", "-W", "error", *pages)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout + p.stderr, "")

    def test_man_pages_reproducible(self):
        """scdoc takes the page's date from SOURCE_DATE_EPOCH."""
        scdoc = shutil.which("scdoc")
        if not scdoc:
            self.skipTest("scdoc not found")
        src = os.path.join(SOURCE, "doc", "mailferry.8.scd")
        outputs = []
        for _ in range(2):
            with open(src, "rb") as f:
                env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
                outputs.append(subprocess.run([scdoc], stdin=f, capture_output=True, env=env,
                                              check=True).stdout)
        self.assertEqual(outputs[0], outputs[1])
        self.assertIn(b'"2023-11-14"', outputs[0])

    def test_sendmail_links(self):
        links = link_paths(self.opts)
        binary = self.under_prefix(self.opts["bindir"], "mailferry")
        if not self.opts["sendmail_links"]:
            for name, path in links.items():
                self.assertFalse(os.path.lexists(self.staged(path)), f"{name} installed without sendmail_links")
            return
        for name, path in links.items():
            staged = self.staged(path)
            self.assertTrue(os.path.islink(staged), f"{name}: no link at {staged}")
            # Relative links resolve inside DESTDIR too; an absolute one is checked by its text.
            target = os.readlink(staged)
            if os.path.isabs(target):
                self.assertEqual(target, os.path.join(self.opts["prefix"], self.opts["bindir"], "mailferry"))
            else:
                self.assertTrue(os.path.samefile(staged, binary), f"{name}: {target} is not mailferry")
        if os.path.exists(self.staged(links["sendmail (sbindir)"])):
            # Called as sendmail it parses sendmail's options: -bd is refused with sendmail's prefix.
            p = run(self.staged(links["sendmail (sbindir)"]), "-bd")
            self.assertEqual(p.returncode, 64, p.stderr)
            self.assertIn("mailferry sendmail: -bd is not supported", p.stderr)

    def test_sendmail_links_option_in_install_plan(self):
        """With the option on, meson plans the links (read from a scratch configuration when the
        build directory has it off)."""
        if self.opts["sendmail_links"]:
            build = BUILD
        else:
            build = os.path.join(self.tmp, "links-on")
            p = run(MESON, "setup", build, SOURCE, "-Dsendmail_links=true", "-Dtests=disabled",
                    f"--wrap-mode={self.opts['wrap_mode']}", f"--prefix={self.opts['prefix']}", timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        installed = introspect(build, "--installed")
        destinations = set(installed.values())
        links = link_paths(self.opts)
        self.assertIn(links["mailq"], destinations)
        # introspect keys symlinks by name, so of the two "sendmail" links only one shows.
        self.assertTrue({links["sendmail (sbindir)"], links["sendmail (lib)"]} & destinations,
                        f"no sendmail link in {sorted(destinations)}")

    def unit_path(self):
        return self.under_prefix("lib", "systemd", "system", UNIT)

    def test_systemd_unit_installed(self):
        self.assertTrue(os.path.isfile(self.unit_path()), f"no {self.unit_path()}")

    def analyze(self):
        analyze = shutil.which("systemd-analyze")
        if not analyze:
            self.skipTest("systemd-analyze not found (Debian package systemd)")
        if not os.path.isfile(self.unit_path()):
            self.fail(f"no {self.unit_path()}")
        return analyze

    def test_systemd_unit_verify_silent(self):
        """verify exits 0 on warnings, so any output fails. It checks that the binary ExecStart=
        names exists: in a private mount namespace the staged bindir is overlaid on /usr/bin, so the
        unmodified installed unit finds the binary meson installed at the path it names, and the
        host's /usr/bin (with /bin/kill for ExecReload=) stays visible under it. Documentation=
        runs man(1): MANPATH points at the staged pages, or --man=no when none were built."""
        analyze = self.analyze()
        unshare = shutil.which("unshare")
        if os.geteuid() != 0 or not unshare:
            self.skipTest("needs root and unshare(1) to overlay the staged binary on /usr/bin")
        bindir = self.under_prefix(self.opts["bindir"])
        self.assertTrue(os.access(os.path.join(bindir, "mailferry"), os.X_OK))
        mandir = self.under_prefix(self.opts["mandir"])
        env = dict(os.environ)
        man_flag = []
        if all(os.path.isfile(p) for p in self.man_pages()):
            env["MANPATH"] = mandir
        else:
            man_flag = ["--man=no"]
        script = ('mount -t overlay overlay -o "lowerdir=$1:/usr/bin" /usr/bin && '
                  'test -x /usr/bin/mailferry && shift && exec "$@"')
        p = run(unshare, "--mount", "--propagation", "private", "sh", "-c", script, "sh", bindir,
                analyze, "verify", *man_flag, self.unit_path(), env=env)
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

    def test_systemd_unit_exposure(self):
        analyze = self.analyze()
        p = run(analyze, "security", "--offline=true", "--no-pager", self.unit_path())
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
        self.assertIsNotNone(match, p.stdout)
        self.assertLessEqual(float(match.group(1)), MAX_EXPOSURE, p.stdout)


def main():
    global MESON, SOURCE, BUILD, MANDOC
    argv = list(sys.argv)
    if len(argv) < 4:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    MESON, SOURCE, BUILD = argv[1], os.path.abspath(argv[2]), os.path.abspath(argv[3])
    rest = argv[4:]
    if rest and not rest[0].startswith("-"):
        MANDOC = rest.pop(0)
    unittest.main(module="__main__", argv=[argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    main()
