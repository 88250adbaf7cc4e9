"""The package's layout rules, checked on the source: who may import what."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "twin_stream"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules_importing(prefix: str) -> dict[str, set[str]]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        hits = {n for n in _imports(path) if n == prefix or n.startswith(prefix + ".")}
        if hits:
            found[str(path.relative_to(PACKAGE.parent))] = hits
    return found


def test_only_devtools_imports_the_simulators() -> None:
    outside = {
        path: names
        for path, names in _modules_importing("simulators").items()
        if not path.startswith("twin_stream/devtools/")
    }
    assert outside == {}, f"only twin_stream/devtools may import simulators: {outside}"
    assert _modules_importing("simulators"), "the rule must look at real imports"


def test_the_platform_does_not_import_devtools() -> None:
    # The CLI is the one edge that may start dev tooling (demo, bench, eval, stack).
    platform = {
        path: names
        for path, names in _modules_importing("twin_stream.devtools").items()
        if not path.startswith(("twin_stream/devtools/", "twin_stream/cli/"))
    }
    assert platform == {}, f"the platform must not import devtools: {platform}"


def test_the_domain_imports_no_io_library() -> None:
    io_libraries = ("faust", "kafka", "aiokafka", "paho", "influxdb_client", "grafana_client")
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            n for n in _imports(path) if n.split(".")[0] in io_libraries
        )
        for path in (PACKAGE / "domain").rglob("*.py")
    }
    assert {p: n for p, n in offenders.items() if n} == {}


def test_the_alert_policy_is_a_package_of_one_job_per_module() -> None:
    """The alert policy (issue 21): parameters, wording, one module per kind of condition, the
    merging core and the policy, each under 400 lines. A kind of condition builds on the core
    alone; only the policy puts the kinds together."""
    package = PACKAGE / "domain" / "alerting"
    modules = {path.stem: path for path in package.glob("*.py")}
    kinds = {"anomaly", "predicted_failure", "data_quality", "connectivity"}
    assert {"params", "wording", "state", "merge", "policy", *kinds} <= set(modules)
    assert not (PACKAGE / "domain" / "alerting.py").exists()
    lines = {name: len(path.read_text().splitlines()) for name, path in modules.items()}
    assert {name: n for name, n in lines.items() if n >= 400} == {}
    for kind in kinds:
        siblings = {
            name.removeprefix("twin_stream.domain.alerting.")
            for name in _imports(modules[kind])
            if name.startswith("twin_stream.domain.alerting.")
        }
        assert siblings & (kinds | {"policy"}) == set(), f"{kind} imports {siblings}"


def test_the_readme_walk_names_files_that_exist() -> None:
    """The README's hop -> module table is the newcomer's map: every file it names exists, and
    every named symbol is defined in its file."""
    readme = (PACKAGE.parent / "README.md").read_text()
    start = readme.index("| hop | what happens | module |")
    rows = [line for line in readme[start:].splitlines()[2:] if line.startswith("|")]
    assert len(rows) >= 9  # simulator ... Grafana query
    hops = [row.split("|")[1].strip() for row in rows]
    for hop in ("simulator", "MQTT topic", "bridge", "Kafka topic", "worker agent", "detector"):
        assert hop in hops
    for hop in ("alert policy", "sink measurement", "Grafana query"):
        assert hop in hops
    for row in rows:
        cell = row.split("|")[3]
        for path, symbol in re.findall(r"`([\w/]+\.py)`(?: \(`(\w+)[.`]?)?", cell):
            file = PACKAGE.parent / path
            assert file.is_file(), f"README names {path}, which does not exist"
            if symbol:
                assert re.search(
                    rf"\b(def|class) {symbol}\b|^{symbol} =", file.read_text(), re.M
                ), f"{symbol} is not defined in {path}"


def test_tls_needs_no_client_library_and_the_stack_no_platform_service() -> None:
    """The TLS helpers are the standard library's (and our errors): the CLI, the bridge, the
    simulator and the local stack all import them. The stack, below the services it runs for
    tests and the demo, imports none of them (it took its TLS from the bridge once)."""
    import sys

    tls = _imports(PACKAGE / "tls.py")
    assert {n for n in tls if n.split(".")[0] not in sys.stdlib_module_names} == {
        "twin_stream.errors"
    }
    services = ("twin_stream.bridge", "twin_stream.worker", "twin_stream.sink", "twin_stream.cli")
    stack = {
        str(path.relative_to(PACKAGE)): sorted(n for n in _imports(path) if n.startswith(services))
        for path in (PACKAGE / "devtools" / "stack").rglob("*.py")
    }
    assert {p: n for p, n in stack.items() if n} == {}


def test_kafka_security_is_put_in_each_clients_terms_in_one_module() -> None:
    """kafka-python's, librdkafka's and Faust's names for the security settings appear in
    twin_stream/kafka_security.py only: one mapping, not one per client's caller."""
    clients_names = {
        "security_protocol",  # kafka-python's keywords (a dict key: a string)
        "sasl_plain_username",
        "sasl_plain_password",
        "security.protocol",  # librdkafka's options
        "sasl.username",
        "sasl.password",
        "ssl.ca.location",
        "SASLCredentials",  # Faust's
        "SSLCredentials",
    }
    where: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                name = node.value
            elif isinstance(node, ast.Attribute):
                name = node.attr
            else:
                continue
            if name in clients_names:
                where.setdefault(str(path.relative_to(PACKAGE)), set()).add(name)
    assert set(where) == {"kafka_security.py"}, where


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces as -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_doc_link_of_the_readme_and_the_docs_resolves() -> None:
    """A link to a file of the repository names one that exists, and a ``#anchor`` one of its
    headings: the README is the front door, the docs are where it sends a reader."""
    root = PACKAGE.parent
    pages = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    checked = 0
    for page in pages:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # no links in code
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            assert file.is_file(), f"{page.name} links to {target}, which does not exist"
            if anchor:
                headings = re.findall(r"^#+ (.+)$", file.read_text(), re.M)
                assert anchor in {_anchor(h) for h in headings}, f"{page.name}: no #{anchor}"
            checked += 1
    assert checked >= 10  # the README's "where to read on" alone has more


def test_the_readme_opens_with_its_two_commands() -> None:
    """``make demo`` and ``make test`` are the README's first two commands (CI runs the second
    as the README gives it: .ci/run)."""
    readme = (PACKAGE.parent / "README.md").read_text()
    first = re.search(r"```bash\n(.*?)```", readme, re.S)
    assert first is not None
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert [c for c in commands if c][:2] == ["make demo", "make test"]
    assert len(readme.splitlines()) < 150  # a front door: the rest is in docs/


#: A module longer than this holds several jobs: split it (issue 21).
MAX_MODULE_LINES = 400


def test_no_module_is_over_400_lines() -> None:
    modules = [*PACKAGE.rglob("*.py"), *(PACKAGE.parent / "simulators").rglob("*.py")]
    lines = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in modules}
    assert len(lines) > 100, "the rule must look at the real modules"
    over = {path: n for path, n in sorted(lines.items()) if n > MAX_MODULE_LINES}
    assert over == {}, f"modules over {MAX_MODULE_LINES} lines (split them): {over}"
