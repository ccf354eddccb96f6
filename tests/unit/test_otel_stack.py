"""examples/otel-stack/ against itself and against what agentproxy emits: the compose file and every config parse,
services, ports and mounts agree, and every metric and span a dashboard queries is one of agentproxy.telemetry.names'
under the naming rule the README documents (prometheus_name below)."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from agentproxy.telemetry import names
from agentproxy.telemetry.names import METRICS, Metric

ROOT = Path(__file__).parents[2]
STACK = ROOT / "examples" / "otel-stack"
README = STACK / "README.md"
COMPOSE = STACK / "docker-compose.yaml"
COLLECTOR = STACK / "otel-collector.yaml"
TEMPO = STACK / "tempo.yaml"
PROMETHEUS = STACK / "prometheus.yaml"
DATASOURCES = STACK / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
DASHBOARD_PROVIDERS = STACK / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml"
DASHBOARDS = STACK / "grafana" / "dashboards"
OVERVIEW = "agentproxy: tasks and costs"
ONE_TASK = "agentproxy: one task"

TRANSLATION_STRATEGY = "UnderscoreEscapingWithSuffixes"  # the collector setting prometheus_name() implements
UNIT_WORDS = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}  # the exporter's words; other units stay as written
# The resource agentproxy/telemetry/setup.py makes: its attributes are labels too (resource_to_telemetry_conversion).
RESOURCE_ATTRIBUTES = ("service.name", "service.namespace", "pa.owner_id")
PROMETHEUS_PORT = 9090  # Prometheus's --web.listen-address unless its command says otherwise
IMAGES = {
    "collector": "otel/opentelemetry-collector-contrib",
    "tempo": "grafana/tempo",
    "prometheus": "prom/prometheus",
    "grafana": "grafana/grafana",
}
SPAN_NAMES = frozenset(
    value for key, value in vars(names).items() if key.isupper() and isinstance(value, str) and key != "FUNCTION_PREFIX"
)
PROMQL_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool"})
PROMQL_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}
PROMQL_AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values"})
PROMQL_AGGREGATIONS |= {"bottomk", "topk", "quantile", "limitk", "limit_ratio"}


# -- the naming rule ----------------------------------------------------------------------------------------------


def prometheus_name(metric: Metric) -> str:
    """The name the collector's prometheus exporter gives a metric under UnderscoreEscapingWithSuffixes.

    Each run of characters other than letters, digits and ':' becomes one '_'; the unit's word is appended unless
    the name has it already; a counter ends in _total. An up-down counter is a gauge and takes no type suffix; a
    histogram keeps the name, its series add _bucket, _sum and _count."""
    words = [word for word in re.split(r"[^A-Za-z0-9:]+", metric.name) if word]
    unit = unit_word(metric.unit)
    if unit and unit not in words:
        words.append(unit)
    if metric.kind == "counter":
        words = [word for word in words if word != "total"] + ["total"]
    return "_".join(words)


def unit_word(unit: str) -> str:
    if unit in ("", "1") or re.fullmatch(r"\{[^{}]*\}", unit):  # dimensionless, or an annotation such as {task}
        return ""
    if not re.fullmatch(r"[A-Za-z]+", unit):
        raise ValueError(f"unit {unit!r}: extend the rule, here and in the README, before emitting it")
    return UNIT_WORDS.get(unit, unit)


def label_name(attribute: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", attribute)


def prometheus_series(metric: Metric) -> set[str]:
    name = prometheus_name(metric)
    return {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if metric.kind == "histogram" else {name}


SERIES = {series: metric for metric in METRICS for series in prometheus_series(metric)}
RESOURCE_LABELS = frozenset(label_name(attribute) for attribute in RESOURCE_ATTRIBUTES)


def test_the_rule_gives_the_names_the_readme_shows() -> None:
    readme = README.read_text()
    for metric in METRICS:
        row = rf"^\| `{re.escape(metric.name)}` \|[^\n]*\| `{re.escape(prometheus_name(metric))}` \|"
        assert re.search(row, readme, re.MULTILINE), f"README.md has no row {metric.name} -> {prometheus_name(metric)}"


def test_the_rule_follows_the_exporter_on_suffixes() -> None:
    # units and kinds as the exporter treats them (otlptranslator's normalizeName)
    assert prometheus_name(Metric("a.b", "counter", "{thing}", "")) == "a_b_total"
    assert prometheus_name(Metric("a.b", "histogram", "s", "")) == "a_b_seconds"
    assert prometheus_name(Metric("a.cost", "counter", "USD", "")) == "a_cost_USD_total"
    assert prometheus_name(Metric("a.b", "updown", "{thing}", "")) == "a_b"
    assert prometheus_name(Metric("a.seconds.spent", "counter", "s", "")) == "a_seconds_spent_total"
    assert prometheus_name(Metric("a.total.b", "counter", "", "")) == "a_b_total"


# -- reading the files ----------------------------------------------------------------------------------------------


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@functools.cache
def compose() -> dict[str, Any]:
    return load(COMPOSE)


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def service_running(image: str) -> str:
    [name] = [name for name, service in services().items() if service["image"].split(":")[0] == image]
    return name


def published(service: str) -> dict[int, int]:
    """The service's published ports: container port -> host port."""
    ports: dict[int, int] = {}
    for entry in services()[service].get("ports", []):
        if isinstance(entry, dict):
            ports[int(entry["target"])] = int(entry["published"])
            continue
        *host, container = str(entry).split(":")
        ports[int(container)] = int(host[-1]) if host else int(container)
    return ports


def bind_mounts(service: str) -> dict[str, Path]:
    """The service's bind mounts: path in the container -> file or folder in the stack."""
    mounts = {}
    for entry in services()[service].get("volumes", []):
        source, target, *_ = entry.split(":")
        if source.startswith("."):
            mounts[target] = STACK / source
    return mounts


def mounted_source(service: str, path: str) -> Path:
    """The stack's file seen at path inside the service's container."""
    wanted = PurePosixPath(path)
    for target, source in bind_mounts(service).items():
        if wanted == PurePosixPath(target) or PurePosixPath(target) in wanted.parents:
            return source / wanted.relative_to(target)
    raise AssertionError(f"{service} mounts nothing at {path}")


def port_of(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def host_and_port(address: str) -> tuple[str, int]:
    parts = urlsplit(address if "//" in address else f"//{address}")
    assert parts.hostname and parts.port, f"{address}: give a host and a port"
    return parts.hostname, parts.port


def collector_config() -> dict[str, Any]:
    return load(COLLECTOR)


def otlp_receiver_ports() -> dict[str, int]:
    protocols = collector_config()["receivers"]["otlp"]["protocols"]
    return {protocol: port_of(settings["endpoint"]) for protocol, settings in protocols.items()}


def pipeline_exporters(signal: str) -> dict[str, dict[str, Any]]:
    config = collector_config()
    return {name: config["exporters"][name] or {} for name in config["service"]["pipelines"][signal]["exporters"]}


def tempo_ports() -> set[int]:
    config = load(TEMPO)
    protocols = config["distributor"]["receivers"]["otlp"]["protocols"]
    return {config["server"]["http_listen_port"], *(port_of(settings["endpoint"]) for settings in protocols.values())}


def listening_ports(service: str) -> set[int]:
    """The ports the service listens on inside the compose network, as its own config says."""
    image = services()[service]["image"].split(":")[0]
    if image == IMAGES["tempo"]:
        return tempo_ports()
    if image == IMAGES["collector"]:
        return {*otlp_receiver_ports().values(), port_of(pipeline_exporters("metrics")["prometheus"]["endpoint"])}
    if image == IMAGES["prometheus"]:
        return {PROMETHEUS_PORT}
    raise AssertionError(f"no config says where {service} listens")


def assert_reaches(address: str, image: str) -> None:
    """address names the compose service running image, on a port that service listens on."""
    host, port = host_and_port(address)
    assert host == service_running(image), f"{address} is not the {image} service"
    assert port in listening_ports(host), f"{address}: {host} listens on {sorted(listening_ports(host))}"


def readme_section(title: str) -> str:
    match = re.search(rf"^## {title}\n(.*?)(?=^## |\Z)", README.read_text(), re.MULTILINE | re.DOTALL)
    assert match, f"README.md has no section {title!r}"
    return match.group(1)


def readme_services() -> dict[str, str]:
    """The README's services table: service -> image."""
    return dict(re.findall(r"^\| `([^`]+)` \| `([^`]+)` \|", readme_section("Services"), re.MULTILINE))


@functools.cache
def dashboards() -> dict[str, dict[str, Any]]:
    """Every dashboard by title."""
    boards = [json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))]
    return {board["title"]: board for board in boards}


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board: dict[str, Any], kind: str) -> list[str]:
    """The queries of one datasource type: the panels' and the template variables'."""
    found = []
    for panel in panels(board):
        for target in panel.get("targets", []):
            if (target.get("datasource") or panel.get("datasource") or {}).get("type") == kind:
                found.append(target["expr"] if kind == "prometheus" else target["query"])
    for variable in board.get("templating", {}).get("list", []):
        if (variable.get("datasource") or {}).get("type") == kind:
            query = variable["query"]
            found.append(query["query"] if isinstance(query, dict) else query)
    return found


def all_queries(kind: str) -> list[str]:
    return [query for board in dashboards().values() for query in queries(board, kind)]


# -- PromQL and TraceQL, as far as the dashboards need --------------------------------------------------------------


def without_strings(query: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)


def metric_identifiers(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana label_values() query) selects."""
    text = without_strings(expr)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)  # label matchers and ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:[eE][+-]?\d+|ms|[smhdwy])?\b", " ", text)  # numbers and durations
    if match := re.fullmatch(r"\s*label_values\((.*),\s*\w+\s*\)\s*", text):
        text = match.group(1)
    found = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group()
        if not text[match.end() :].lstrip().startswith("(") and word not in PROMQL_KEYWORDS | PROMQL_AGGREGATIONS:
            found.add(word)
    return found


def labels_used(expr: str) -> set[str]:
    """The labels a PromQL expression matches on or groups by, and a label_values() query's label."""
    text = without_strings(expr)
    used = {
        label
        for matchers in re.findall(r"\{([^}]*)\}", text)
        for label in re.findall(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)", matchers)
    }
    for grouping in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", text):
        used |= {label.strip() for label in grouping.split(",") if label.strip()}
    if match := re.fullmatch(r"\s*label_values\(.*,\s*(\w+)\s*\)\s*", text, re.DOTALL):
        used.add(match.group(1))
    return used


SPAN_NAME_CONDITION = re.compile(r'(?<![\w.:])(?:span:)?name\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')


def span_names_matched(operator: str, value: str) -> set[str]:
    """The span names of names.py a TraceQL condition on the span name can match (pa.function.* as one)."""
    if operator in ("=", "!="):
        family = value.startswith(names.FUNCTION_PREFIX) and len(value) > len(names.FUNCTION_PREFIX)
        return {names.FUNCTION_PREFIX} if family else {value} & SPAN_NAMES
    matched = {name for name in SPAN_NAMES if re.fullmatch(value, name)}
    literal = re.sub(r"\\\.|\[\.\]", ".", value)
    if literal.removesuffix(".+").removesuffix(".*") == names.FUNCTION_PREFIX:
        matched.add(names.FUNCTION_PREFIX)
    return matched


# -- the files parse ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(STACK.rglob("*.y*ml")), ids=lambda path: str(path.relative_to(STACK)))
def test_every_yaml_file_parses_to_a_mapping(path: Path) -> None:
    assert isinstance(load(path), dict)


def test_there_are_the_configs_the_compose_file_mounts() -> None:
    for name in services():
        for target, source in bind_mounts(name).items():
            assert source.exists(), f"{name} mounts {source.relative_to(STACK)} at {target}: no such file"


@pytest.mark.parametrize("path", sorted(DASHBOARDS.glob("*.json")), ids=lambda path: path.name)
def test_every_dashboard_parses_with_a_uid_and_panels(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    assert list(panels(board))


def test_there_are_the_two_dashboards_with_distinct_uids() -> None:
    assert {OVERVIEW, ONE_TASK} <= dashboards().keys()
    uids = [board["uid"] for board in dashboards().values()]
    assert len(uids) == len(set(uids))


# -- services, ports, mounts ----------------------------------------------------------------------------------------


def test_the_readme_names_every_service_with_its_image() -> None:
    images = {name: service["image"] for name, service in services().items()}
    assert readme_services() == images


def test_each_service_reads_the_config_mounted_for_it() -> None:
    flags = 0
    for name, service in services().items():
        for argument in service.get("command", []):
            if match := re.fullmatch(r"-{1,2}config(?:\.file)?=(.+)", argument):
                flags += 1
                assert mounted_source(name, match.group(1)).is_file(), f"{name} reads {match.group(1)}: not mounted"
    assert flags == 3  # the collector, Tempo, Prometheus


def test_the_collector_publishes_its_otlp_ports_where_the_readme_sends_agentproxy() -> None:
    collector = service_running(IMAGES["collector"])
    ports = otlp_receiver_ports()
    assert ports == {"grpc": 4317, "http": 4318}  # the OTLP defaults: agentproxy's endpoint needs no port rewriting
    assert set(ports.values()) <= published(collector).keys()
    host_ports = {published(collector)[port] for port in ports.values()}
    endpoints = re.findall(r"OTEL_EXPORTER_OTLP_ENDPOINT=(\S+)", README.read_text())
    assert endpoints
    for endpoint in endpoints:
        host, port = host_and_port(endpoint)
        assert host == "localhost" and port in host_ports, f"README's {endpoint} reaches no published OTLP port"


def test_traces_go_to_tempos_otlp_receiver() -> None:
    [(name, exporter)] = pipeline_exporters("traces").items()
    assert name.split("/")[0] == "otlp_grpc"
    assert_reaches(exporter["endpoint"], IMAGES["tempo"])
    assert port_of(exporter["endpoint"]) != load(TEMPO)["server"]["http_listen_port"]


def test_prometheus_scrapes_the_collectors_prometheus_exporter_named_by_the_rule() -> None:
    exporter = pipeline_exporters("metrics")["prometheus"]
    assert exporter["translation_strategy"] == TRANSLATION_STRATEGY
    assert exporter["resource_to_telemetry_conversion"]["enabled"]  # the dashboards filter on resource labels
    [job] = load(PROMETHEUS)["scrape_configs"]
    [target] = [target for config in job["static_configs"] for target in config["targets"]]
    assert_reaches(target, IMAGES["collector"])
    assert port_of(target) == port_of(exporter["endpoint"])


def test_grafana_reads_both_datasources_from_their_services() -> None:
    datasources = {source["type"]: source for source in load(DATASOURCES)["datasources"]}
    assert datasources.keys() == {"prometheus", "tempo"}
    assert_reaches(datasources["prometheus"]["url"], IMAGES["prometheus"])
    assert_reaches(datasources["tempo"]["url"], IMAGES["tempo"])
    assert host_and_port(datasources["tempo"]["url"])[1] == load(TEMPO)["server"]["http_listen_port"]


def test_grafana_provisions_the_dashboards_from_the_mounted_folder() -> None:
    grafana = service_running(IMAGES["grafana"])
    [provider] = load(DASHBOARD_PROVIDERS)["providers"]
    assert mounted_source(grafana, provider["options"]["path"]) == DASHBOARDS
    provisioning = "/etc/grafana/provisioning"  # where Grafana looks (GF_PATHS_PROVISIONING)
    assert mounted_source(grafana, f"{provisioning}/datasources/{DATASOURCES.name}") == DATASOURCES
    assert mounted_source(grafana, f"{provisioning}/dashboards/{DASHBOARD_PROVIDERS.name}") == DASHBOARD_PROVIDERS
    home = services()[grafana]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert json.loads(mounted_source(grafana, home).read_text())["title"] == OVERVIEW


def test_every_panel_uses_a_provisioned_datasource() -> None:
    provisioned = {(source["type"], source["uid"]) for source in load(DATASOURCES)["datasources"]}
    for board in dashboards().values():
        for panel in panels(board):
            for source in [panel.get("datasource"), *(target.get("datasource") for target in panel.get("targets", []))]:
                if source is not None:
                    assert (source["type"], source["uid"]) in provisioned, f"{board['title']}/{panel['title']}"


# -- the dashboards' queries against agentproxy's names -------------------------------------------------------------


def test_every_metric_a_dashboard_queries_is_one_agentproxy_emits() -> None:
    expressions = all_queries("prometheus")
    assert expressions
    for expr in expressions:
        found = metric_identifiers(expr)
        assert found, f"no metric found in {expr!r}"
        assert found <= SERIES.keys(), f"{sorted(found - SERIES.keys())} in {expr!r}: not in names.METRICS"


def test_every_label_a_query_uses_is_one_its_metrics_have() -> None:
    for expr in all_queries("prometheus"):
        series = metric_identifiers(expr)
        allowed = {label_name(label) for name in series & SERIES.keys() for label in SERIES[name].labels}
        allowed |= RESOURCE_LABELS
        allowed |= {"le"} if any(name.endswith("_bucket") for name in series) else set()
        assert labels_used(expr) <= allowed, f"{sorted(labels_used(expr) - allowed)} in {expr!r}"


def test_the_overview_charts_every_metric_agentproxy_emits() -> None:
    charted = {name for expr in queries(dashboards()[OVERVIEW], "prometheus") for name in metric_identifiers(expr)}
    missing = [metric.name for metric in METRICS if not prometheus_series(metric) & charted]
    assert not missing, f"the overview shows nothing of {missing}"


def test_every_span_name_a_dashboard_queries_is_one_agentproxy_emits() -> None:
    conditions = [match for query in all_queries("tempo") for match in SPAN_NAME_CONDITION.findall(query)]
    assert conditions
    for operator, value in conditions:
        assert span_names_matched(operator, value), f'name {operator} "{value}" matches no span of names.py'


def test_the_task_dashboard_follows_one_session_and_draws_its_trace() -> None:
    board = dashboards()[ONE_TASK]
    variables = {variable["name"] for variable in board["templating"]["list"]}
    tempo = queries(board, "tempo")
    assert {"session", "trace_id"} <= variables
    assert any(re.search(r'span\.pa\.session_id\s*=\s*"\$session"', query) for query in tempo)
    [timeline] = [panel for panel in panels(board) if panel["type"] == "traces"]
    assert [target["query"] for target in timeline["targets"]] == ["$trace_id"]
