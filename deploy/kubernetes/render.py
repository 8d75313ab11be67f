#!/usr/bin/python3
"""Render deploy/helm/portcullis/ into plain Kubernetes manifests without Helm.

    /usr/bin/python3 deploy/kubernetes/render.py            # rewrite portcullis.yaml
    /usr/bin/python3 deploy/kubernetes/render.py --check    # exit 1 if it is stale
    /usr/bin/python3 deploy/kubernetes/render.py -f my-values.yaml --namespace prod \\
        --release edge -o -                                  # your values, to stdout

It evaluates the chart's own templates with the subset of Helm's template
language they use (fields, if/else, range, define/include, and the functions
listed in FUNCS), so the rendered manifests and `helm template` come from the
same source. A template using anything else is an error, never silently wrong.
Needs only Debian's python3 and python3-yaml.
"""

import argparse
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.join(os.path.dirname(HERE), "helm", "portcullis")
OUTPUT = os.path.join(HERE, "portcullis.yaml")
RELEASE = "portcullis"
NAMESPACE = "portcullis"


class TemplateError(Exception):
    pass


# ---------------------------------------------------------------- parsing

ACTION = re.compile(r"\{\{(-?)(.*?)(-?)\}\}", re.S)


def tokenize(text):
    """Text and action tokens, with {{- and -}} whitespace trimming applied."""
    out, pos, trim_next = [], 0, False
    for m in ACTION.finditer(text):
        chunk = text[pos:m.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if m.group(1):
            chunk = chunk.rstrip()
        out.append(("text", chunk))
        body = m.group(2).strip()
        if not (body.startswith("/*") and body.endswith("*/")):
            out.append(("action", body))
        trim_next = bool(m.group(3))
        pos = m.end()
    chunk = text[pos:]
    out.append(("text", chunk.lstrip() if trim_next else chunk))
    return out


def parse(tokens, i=0, stop=("end",)):
    """Nodes until one of the stop keywords; returns (nodes, index, keyword)."""
    nodes = []
    while i < len(tokens):
        kind, val = tokens[i]
        i += 1
        if kind == "text":
            if val:
                nodes.append(("text", val))
            continue
        word = val.split(None, 1)[0] if val else ""
        rest = val[len(word):].strip()
        if word in stop:
            return nodes, i, word
        if word in ("if", "range", "with"):
            body, i, kw = parse(tokens, i, ("end", "else"))
            other = []
            if kw == "else":
                other, i, kw = parse(tokens, i, ("end",))
            if kw != "end":
                raise TemplateError(f"{{{{ {val} }}}} has no {{{{ end }}}}")
            nodes.append((word, rest, body, other))
        elif word == "define":
            body, i, kw = parse(tokens, i, ("end",))
            if kw != "end":
                raise TemplateError(f"{{{{ {val} }}}} has no {{{{ end }}}}")
            nodes.append(("define", parse_string(rest), body))
        elif word in ("end", "else"):
            raise TemplateError(f"unexpected {{{{ {val} }}}}")
        else:
            nodes.append(("action", val))
    return nodes, i, None


def parse_string(s):
    m = re.fullmatch(r'"((?:[^"\\]|\\.)*)"', s.strip())
    if not m:
        raise TemplateError(f"expected a string: {s}")
    return bytes(m.group(1), "utf-8").decode("unicode_escape")


# ---------------------------------------------------------------- expressions

EXPR_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|\||-?\d+|[$.\w][\w.$]*)')


def lex_expr(s):
    toks, pos = [], 0
    s = s.strip()
    while pos < len(s):
        m = EXPR_TOKEN.match(s, pos)
        if not m:
            raise TemplateError(f"cannot parse expression: {s!r} at {pos}")
        toks.append(m.group(1))
        pos = m.end()
        while pos < len(s) and s[pos].isspace():
            pos += 1
    return toks


def parse_pipeline(toks, i=0):
    """pipeline := command ('|' command)*; command := operand+ ; returns (cmds, i)."""
    cmds, cur = [], []
    while i < len(toks):
        t = toks[i]
        if t == ")":
            break
        if t == "|":
            cmds.append(cur)
            cur = []
            i += 1
            continue
        if t == "(":
            sub, i = parse_pipeline(toks, i + 1)
            if i >= len(toks) or toks[i] != ")":
                raise TemplateError("unbalanced parenthesis")
            cur.append(("pipe", sub))
            i += 1
            continue
        cur.append(("tok", t))
        i += 1
    cmds.append(cur)
    return cmds, i


class Renderer:
    def __init__(self, root):
        self.root = root
        self.defines = {}
        self.funcs = {
            "include": lambda name, ctx: self.include(name, ctx),
            "quote": lambda v: '"' + str(fmt(v)).replace("\\", "\\\\").replace('"', '\\"') + '"',
            "toYaml": lambda v: "" if v is None else yaml.safe_dump(
                v, default_flow_style=False, sort_keys=True).rstrip("\n"),
            "nindent": lambda n, s: "\n" + indent(n, s),
            "indent": indent,
            "default": lambda d, v=None: v if truthy(v) else d,
            "int": lambda v: int(v),
            "add": lambda *a: sum(int(x) for x in a),
            "printf": lambda f, *a: go_printf(f, a),
            "trunc": lambda n, s: s[:n],
            "contains": lambda sub, s: sub in s,
            "trimSuffix": lambda suf, s: s[:-len(suf)] if suf and s.endswith(suf) else s,
            "eq": lambda a, b: a == b,
            "ne": lambda a, b: a != b,
            "le": lambda a, b: a <= b,
            "lt": lambda a, b: a < b,
            "ge": lambda a, b: a >= b,
            "gt": lambda a, b: a > b,
            "not": lambda v: not truthy(v),
            "and": lambda *a: all(truthy(x) for x in a),
            "or": lambda *a: any(truthy(x) for x in a),
            "fail": self.fail,
            "required": self.required,
        }

    @staticmethod
    def fail(msg):
        raise TemplateError(f"fail: {msg}")

    @staticmethod
    def required(msg, v=None):
        if v is None or v == "":
            raise TemplateError(f"required: {msg}")
        return v

    def include(self, name, ctx):
        if name not in self.defines:
            raise TemplateError(f"no template named {name!r}")
        return self.render_nodes(self.defines[name], ctx)

    def operand(self, op, dot):
        kind, t = op
        if kind == "pipe":
            return self.eval_cmds(t, dot)
        if t.startswith('"'):
            return parse_string(t)
        if re.fullmatch(r"-?\d+", t):
            return int(t)
        if t in ("true", "false"):
            return t == "true"
        if t == "nil":
            return None
        if t == ".":
            return dot
        if t.startswith("$") or t.startswith("."):
            base = self.root if t.startswith("$") else dot
            path = t.lstrip("$").lstrip(".")
            v = base
            for part in filter(None, path.split(".")):
                if not isinstance(v, dict):
                    raise TemplateError(f"{t}: cannot take field {part} of {type(v).__name__}")
                v = v.get(part)
            return v
        raise TemplateError(f"unknown identifier {t!r}")

    def eval_cmds(self, cmds, dot):
        val, have = None, False
        for cmd in cmds:
            if not cmd:
                raise TemplateError("empty command in pipeline")
            head = cmd[0]
            if head[0] == "tok" and head[1] in self.funcs:
                args = [self.operand(a, dot) for a in cmd[1:]]
                if have:
                    args.append(val)
                val = self.funcs[head[1]](*args)
            elif head[0] == "tok" and re.fullmatch(r"[A-Za-z]\w*", head[1]) and \
                    head[1] not in ("true", "false", "nil"):
                raise TemplateError(f"function {head[1]!r} is not supported by render.py")
            else:
                if len(cmd) != 1 or have:
                    raise TemplateError("a value cannot take arguments")
                val = self.operand(head, dot)
            have = True
        return val

    def eval(self, expr, dot):
        toks = lex_expr(expr)
        cmds, i = parse_pipeline(toks)
        if i != len(toks):
            raise TemplateError(f"unbalanced parenthesis in {expr!r}")
        return self.eval_cmds(cmds, dot)

    def render_nodes(self, nodes, dot):
        out = []
        for n in nodes:
            kind = n[0]
            if kind == "text":
                out.append(n[1])
            elif kind == "action":
                out.append(fmt(self.eval(n[1], dot)))
            elif kind == "if":
                out.append(self.render_nodes(n[2] if truthy(self.eval(n[1], dot)) else n[3], dot))
            elif kind == "with":
                v = self.eval(n[1], dot)
                out.append(self.render_nodes(n[2], v) if truthy(v) else
                           self.render_nodes(n[3], dot))
            elif kind == "range":
                items = self.eval(n[1], dot) or []
                if isinstance(items, dict):
                    items = [items[k] for k in sorted(items)]
                if items:
                    out.extend(self.render_nodes(n[2], item) for item in items)
                else:
                    out.append(self.render_nodes(n[3], dot))
            elif kind == "define":
                self.defines[n[1]] = n[2]
        return "".join(out)

    def load(self, text):
        nodes, _, kw = parse(tokenize(text), 0, ())
        if kw:
            raise TemplateError(f"unexpected {kw}")
        return nodes


def truthy(v):
    return v not in (None, False, 0, "", [], {})


def fmt(v):
    if v is None:
        return ""
    if v is True:
        return "true"
    if v is False:
        return "false"
    return str(v)


def indent(n, s):
    pad = " " * n
    return "\n".join(pad + line for line in str(s).split("\n"))


def go_printf(f, args):
    return re.sub(r"%[sdv]", lambda m, it=iter(args): fmt(next(it)), f)


# ---------------------------------------------------------------- chart

def load_values(extra_files):
    with open(os.path.join(CHART, "values.yaml")) as f:
        values = yaml.safe_load(f) or {}
    for path in extra_files:
        with open(path) as f:
            merge(values, yaml.safe_load(f) or {})
    return values


def merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v


def render(values_files=(), release=RELEASE, namespace=NAMESPACE):
    with open(os.path.join(CHART, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    root = {
        "Values": load_values(values_files),
        "Release": {"Name": release, "Namespace": namespace, "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"],
                  "AppVersion": str(chart["appVersion"])},
    }
    r = Renderer(root)
    tdir = os.path.join(CHART, "templates")
    names = sorted(os.listdir(tdir))
    for name in names:  # helpers first, as Helm loads every define before rendering
        if name.endswith(".tpl"):
            with open(os.path.join(tdir, name)) as f:
                r.render_nodes(r.load(f.read()), root)
    docs = [
        "# Rendered by deploy/kubernetes/render.py from deploy/helm/portcullis (do not edit):\n"
        "#   /usr/bin/python3 deploy/kubernetes/render.py\n"]
    for name in names:
        if not name.endswith(".yaml"):
            continue
        with open(os.path.join(tdir, name)) as f:
            text = r.render_nodes(r.load(f.read()), root)
        for doc in re.split(r"^---\s*$", text, flags=re.M):
            if yaml.safe_load(doc) is None:
                continue
            docs.append(f"---\n# Source: portcullis/templates/{name}\n{doc.strip(chr(10))}\n")
    return "".join(docs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-f", "--values", action="append", default=[],
                    help="values file merged over the chart's values.yaml (repeatable)")
    ap.add_argument("--release", default=RELEASE)
    ap.add_argument("--namespace", default=NAMESPACE)
    ap.add_argument("-o", "--output", default=OUTPUT, help="file to write, or - for stdout")
    ap.add_argument("--check", action="store_true",
                    help="compare with the checked-in output instead of writing it")
    a = ap.parse_args(argv)
    try:
        text = render(a.values, a.release, a.namespace)
    except TemplateError as e:
        print(f"render.py: {e}", file=sys.stderr)
        return 2
    if a.check:
        with open(a.output) as f:
            if f.read() != text:
                print(f"render.py: {a.output} is stale; run deploy/kubernetes/render.py",
                      file=sys.stderr)
                return 1
        return 0
    if a.output == "-":
        sys.stdout.write(text)
    else:
        with open(a.output, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
