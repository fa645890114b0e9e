"""Write ``docs/errors.md``: every error and warning message that ``rapnet_loc`` can give a user, read from the source.

Collected (``ast``): ``raise X(...)`` for the project's errors (``rapnet_loc.errors``: the CLI prints them as one line
and exits with 2), warnings of the core's loggers (``LOG.warning``) and of the nodes (``get_logger().warning`` /
``.error``), and the nodes' rejections (``self.reject(reason, message)``: a warning, and the reason counted in
``/diagnostics``). A message built at run time is shown with ``…`` for each inserted value; one passed in from
elsewhere is shown as *(built by the caller)*; a log call that only relays
such a message (an exception's text) is left out. ``test/test_error_reference.py`` fails when the file is out of date.

    python scripts/error_reference.py [--check]
"""
import argparse
import ast
import inspect
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from rapnet_loc import errors  # noqa: E402

OUT = ROOT / 'docs' / 'errors.md'
ERRORS = {name: cls for name, cls in vars(errors).items()
          if inspect.isclass(cls) and issubclass(cls, errors.RapnetLocError)}
WARNING = 'warning'
REJECTION = 'rejection'
RELAYED = "(the error's own message, one of the errors above)"
HEADER = """# Errors and warnings

Every message `rapnet_loc` can give a user, read from the source by `scripts/error_reference.py` (do not edit by
hand: run it after changing a message; `test/test_error_reference.py` checks this file is current). `…` stands for a
value filled in at run time (a path, a field, a number).

- **Errors** (`rapnet_loc.errors`): `rapnet-loc COMMAND: error: MESSAGE` and exit status 2 (`-v` adds the
  traceback); a node logs the message and drops the input, or, at start-up, exits. Each section says what the errors
  of that kind mean; the message names the file, topic or field at fault and, where there is one, the fix.
- **Warnings**: the run goes on; the message says what was skipped or assumed.
- **Node rejections**: a node drops one input, logs the message and counts the reason in `/diagnostics`.

The README's troubleshooting table explains the common ones in more words.
"""


def render(node: ast.AST) -> str | None:
    """The text of a message expression: constant parts as they are, inserted values as ``…``; None when the
    message is not a literal (a variable, a call) or a concatenation that starts with one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return ''.join(v.value if isinstance(v, ast.Constant) else '…' for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):     # 'text' + (a value or a part)
        left = render(node.left)
        return None if left is None else left + (render(node.right) or '…')
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):     # 'text %s' % value
        return percent(render(node.left))
    return None


def percent(text: str | None) -> str | None:
    """``text`` with its %-style placeholders shown as ``…``."""
    if text is None:
        return None
    out, i = [], 0
    while i < len(text):
        if text[i] == '%' and i + 1 < len(text):
            if text[i + 1] == '%':
                out.append('%')
                i += 2
                continue
            j = i + 1
            while j < len(text) and not text[j].isalpha():
                j += 1
            out.append('…')
            i = j + 1
            continue
        out.append(text[i])
        i += 1
    return ''.join(out)


def function_names(tree: ast.AST) -> dict[ast.AST, str]:
    """The qualified name (``Class.method``) of the function or class around each node of ``tree``."""
    names: dict[ast.AST, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                inner = f'{scope}.{child.name}' if scope else child.name
            names[child] = inner
            visit(child, inner)
    visit(tree, '')
    return names


def messages(path: Path) -> list[tuple[str, str, str]]:
    """``(kind, message, where)`` of the messages in one source file; kind is an error class name, ``WARNING`` or
    ``REJECTION``."""
    tree = ast.parse(path.read_text(), str(path))
    names = function_names(tree)
    module = path.relative_to(ROOT).as_posix()
    found = []
    for node in ast.walk(tree):
        where = f'`{module}` ({names.get(node) or "module"})'
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name) \
                and node.exc.func.id in ERRORS:
            text = render(node.exc.args[0]) if node.exc.args else ''
            found.append((node.exc.func.id, text, where))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            attr, owner = node.func.attr, node.func.value
            logger = (isinstance(owner, ast.Name) and owner.id == 'LOG') or \
                (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Attribute)
                 and owner.func.attr == 'get_logger')
            text = render(node.args[0])
            if logger and attr in ('warning', 'error') and text is not None:     # else it relays a listed message
                found.append((WARNING, percent(text) if isinstance(node.args[0], ast.Constant) else text, where))
            elif attr == 'reject' and len(node.args) >= 2 and isinstance(owner, ast.Name) and owner.id == 'self' \
                    and isinstance(node.args[0], ast.Constant):
                found.append((REJECTION, f'[{node.args[0].value}] {render(node.args[1]) or RELAYED}', where))
    return found


def cell(text: str | None) -> str:
    """A message as a table cell."""
    if text is None:
        return '*(built by the caller)*'
    return '`' + ' '.join(text.split()).replace('|', '\\|').replace('`', "'") + '`'


def reference() -> str:
    """The text of ``docs/errors.md``."""
    groups: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for path in sorted((ROOT / 'rapnet_loc').rglob('*.py')):
        for kind, text, where in messages(path):
            groups[kind].append((cell(text), where))
    parts = [HEADER]
    order = [name for name in ERRORS if name in groups] + [WARNING, REJECTION]
    titles = {WARNING: 'Warnings', REJECTION: 'Node rejections (`[reason]` as counted in `/diagnostics`)'}
    for kind in order:
        if kind in ERRORS:
            doc = ' '.join((ERRORS[kind].__doc__ or '').split())
            parts.append(f'\n## {kind}\n\n{doc}\n')
        else:
            parts.append(f'\n## {titles[kind]}\n')
        parts.append('\n| message | where |\n| --- | --- |\n')
        parts.extend(f'| {text} | {where} |\n' for text, where in sorted(groups[kind]))
    return ''.join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true', help='exit 1 when docs/errors.md is out of date')
    args = parser.parse_args()
    text = reference()
    if args.check:
        current = OUT.read_text() if OUT.is_file() else ''
        sys.exit(0 if current == text else f'{OUT} is out of date: run python scripts/error_reference.py')
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(text)
    print(f'wrote {OUT}: {text.count(chr(10) + "| `") + text.count(chr(10) + "| *")} messages')


if __name__ == '__main__':
    main()
