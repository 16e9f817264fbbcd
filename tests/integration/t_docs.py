#!/usr/bin/env python3
"""The documentation matches the code: every directive of the parser's
table (shared/config.c) has an entry in wsgate.conf(5) and a line in the
sample doc/wsgate.conf, neither documents a directive the parser does not
know, and the defaults both print are the parser's."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def directives(src):
    """name -> (default, unset word) from the config_directives table;
    None where the table says NULL."""
    start = src.index("config_directives[] = {")
    table = src[start:src.index("\n};", start)]
    out = {}
    for m in re.finditer(r'\{\s*"([a-z_]+)",\s*V_[A-Z_]+,\s*FIELD\([^)]*\),'
                         r'\s*[^,"]+,\s*[^,"]+,\s*(NULL|"[^"]*"),\s*(NULL|"[^"]*")',
                         table):
        out[m.group(1)] = tuple(None if v == "NULL" else v[1:-1]
                                for v in (m.group(2), m.group(3)))
    # Every entry opens with '{ "name"': none may escape the pattern.
    required = set(re.findall(r'\{\s*"([a-z_]+)",[^}]*F_REQUIRED', table))
    return out, re.findall(r'\{\s*"([a-z_]+)"', table), required


def man_entries(man):
    """name -> the text of its .It Ic entry (up to the next .It or .El)."""
    return {m.group(1): m.group(0) for m in re.finditer(
        r'^\.It Ic ([a-z_]+)\b.*?(?=^\.It |^\.El)', man, re.S | re.M)}


def read_src(*path):
    with open(os.path.join(harness.SRCDIR, *path), encoding="utf-8") as f:
        return f.read()


def main(t):
    src = read_src("shared", "config.c")
    man = read_src("doc", "wsgate.conf.5")
    sample = read_src("doc", "wsgate.conf")
    table, listed, required = directives(src)
    t.ok(len(table) >= 40, "the parser's table read: %d directives" % len(table))
    t.is_(sorted(table), sorted(listed), "every table entry understood")

    entries = man_entries(man)
    t.is_(sorted(set(table) - set(entries)), [],
          "wsgate.conf(5) documents every directive")
    t.is_(sorted(set(entries) - set(table)), [],
          "wsgate.conf(5) documents no directive the parser lacks")

    lines = {}
    for m in re.finditer(r'^#?([a-z_]+)[ \t]+(\S.*?)\s*$', sample, re.M):
        if m.group(1) in table:
            lines.setdefault(m.group(1), []).append(m.group(2))
    t.is_(sorted(set(table) - set(lines)), [],
          "the sample config has a line for every directive")

    wrong_man, wrong_sample, no_default = [], [], []
    for name, (dflt, unset) in sorted(table.items()):
        text = entries.get(name, "")
        d = re.search(r'Default:(.*)', text, re.S)
        if d is None:
            if name not in required or not re.search(r'^Required\.$', text, re.M):
                no_default.append(name)
            continue
        shown = dflt if dflt is not None else unset
        if shown is None:
            continue	# no default: the man page says what happens instead
        # ".Li 10s ." / ".Cm on ." / "500." / "any origin." (unset "*")
        if dflt is not None and not re.search(
                r'(^|[\s(])%s($|[\s.,)])' % re.escape(dflt), d.group(1)):
            wrong_man.append("%s: %r not in %r" % (name, dflt, d.group(1).strip()))
        vals = lines.get(name, [])
        if vals and shown not in vals:
            wrong_sample.append("%s: %r, sample has %r" % (name, shown, vals))
    t.ok(required, "required keys found: %s" % " ".join(sorted(required)))
    t.is_(no_default, [], "every wsgate.conf(5) entry gives its default "
          "or, for a required key, says so")
    t.is_(wrong_man, [], "wsgate.conf(5) defaults are the parser's")
    t.is_(wrong_sample, [], "the sample config's values for keys with a "
          "default are the parser's defaults")


harness.run(main)
