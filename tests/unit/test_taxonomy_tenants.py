"""Taxonomy and tenant configuration: shipped files load, match docs/domain.md, and errors name file+line."""

from __future__ import annotations

import csv
import textwrap
from pathlib import Path

import pytest

from shared.domain.taxonomy import TaxonomyError, load_taxonomy
from shared.domain.tenants import TenantConfigError, load_all_tenants, load_tenant

REPO = Path(__file__).resolve().parents[2]
TENANTS_DIR = REPO / "deploy" / "tenants"
NYC_SAMPLE = REPO / "data" / "nyc311_2018-10-21_sample.csv"  # ships in data/

# docs/domain.md §3(b), second table "前置审批 (prior-licence) inspections are 8001nn":
#   01 餐饮服务 市场监管, 02 美容美发 卫生健康, 03 歌厅KTV 文化和旅游, 04 洗浴 卫生健康,
#   05 汽车维修 交通运输, 06 营利性医疗机构 卫生健康, 07 药店 市场监管/药监, 08 种子农药 农业农村,
#   09 危险化学品 应急管理.
PRIOR_LICENCE = {
    "800101": ("餐饮服务", "market_regulation", "市场监管"),
    "800102": ("美容美发", "health", "卫生健康"),
    "800103": ("歌厅KTV", "culture_tourism", "文化和旅游"),
    "800104": ("洗浴", "health", "卫生健康"),
    "800105": ("汽车维修", "transport", "交通运输"),
    "800106": ("营利性医疗机构", "health", "卫生健康"),
    "800107": ("药店", "market_regulation", "市场监管"),
    "800108": ("种子农药", "agriculture", "农业农村"),
    "800109": ("危险化学品", "emergency_management", "应急管理"),
}

# docs/domain.md §3(b) first table (first-named department where two are given) plus the brief's
# 4001xx split and 200401.
DEFAULT_HANDLERS = {
    "100401": "housing",
    "100102": "urban_management",
    "100110": "urban_management",
    "100501": "urban_management",
    "500101": "market_regulation",
    "200101": "ecology_environment",
    "200102": "urban_management",
    "200201": "housing",
    "200301": "ecology_environment",
    "200401": "water",
    "300101": "mediation",
    "300102": "mediation",
    "400101": "fire",
    "400102": "housing",
    "400103": "housing",
    "400104": "emergency_management",
    "600101": "civil_affairs",
    "600201": "human_resources",
    "600301": "civil_affairs",
    "600401": "police",
    "700101": "petition_bureau",
    "700201": "inspection_office",
}

REQUIRED_DEPARTMENTS = {
    "urban_management": "城管", "ecology_environment": "生态环境", "health": "卫生健康",
    "market_regulation": "市场监管", "housing": "住建", "water": "水务", "police": "派出所",
    "civil_affairs": "民政", "human_resources": "人社", "culture_tourism": "文化和旅游",
    "transport": "交通运输", "agriculture": "农业农村", "emergency_management": "应急管理",
    "fire": "消防", "petition_bureau": "信访局", "inspection_office": "督查室",
    "mediation": "人民调解", "triage": "指挥中心分拨",
}


@pytest.fixture(scope="module")
def taxonomy():
    return load_taxonomy()


# --------------------------------------------------------------------------- taxonomy


def test_shipped_taxonomy_has_required_departments(taxonomy):
    for code, name_zh in REQUIRED_DEPARTMENTS.items():
        dept = taxonomy.department(code)
        assert dept is not None, code
        assert dept.name_zh == name_zh
        assert dept.name_en


@pytest.mark.parametrize("code,expected", sorted(PRIOR_LICENCE.items()))
def test_prior_licence_trade_routes_to_licensing_department(taxonomy, code, expected):
    name_zh, department, department_zh = expected
    category = taxonomy.category(code)
    assert category is not None
    assert category.name_zh == name_zh
    assert category.kind == "licence"
    assert category.department == department
    assert taxonomy.department(department).name_zh == department_zh


def test_exactly_nine_prior_licence_trades(taxonomy):
    assert {c.code for c in taxonomy.categories_of_kind("licence")} == set(PRIOR_LICENCE)


@pytest.mark.parametrize("code,department", sorted(DEFAULT_HANDLERS.items()))
def test_default_handlers(taxonomy, code, department):
    category = taxonomy.category(code)
    assert category is not None, code
    assert category.department == department
    assert len(code) == 6 and code.isdigit()


def test_disputes_and_notes(taxonomy):
    assert taxonomy.is_dispute("300101") and taxonomy.is_dispute("300102")
    assert not taxonomy.is_dispute("500101")
    assert not taxonomy.is_dispute("HEAT/HOT WATER")
    assert {c.code for c in taxonomy.categories_of_kind("dispute")} == {"300101", "300102"}
    # "城管 or 生态环境, configurable": first department chosen, alternative noted
    assert "ecology_environment" in taxonomy.category("100110").note
    assert taxonomy.category("100401").gb == "04"


def test_department_label(taxonomy):
    assert taxonomy.department_label("market_regulation") == "市场监管 Market regulation"
    assert taxonomy.department_label("HPD") == "HPD"
    assert taxonomy.category("nope") is None
    assert taxonomy.department("nope") is None


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def _line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(needle)


TAXONOMY_OK_HEAD = """
departments:
  - {code: market_regulation, name_zh: 市场监管, name_en: Market regulation}
  - {code: triage, name_zh: 指挥中心分拨, name_en: Triage}
categories:
  - {code: "500101", name_zh: 无照经营, name_en: Unlicensed shop, department: market_regulation, kind: case}
"""


def test_taxonomy_unknown_department_names_file_and_line(tmp_path):
    path = _write(tmp_path, "tax.yaml", TAXONOMY_OK_HEAD + """
  - code: "200101"
    name_zh: 异味扰民
    name_en: Odour
    department: ecology_environmnet
    kind: case
""")
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    line = _line_of(path, "ecology_environmnet")
    assert str(info.value).startswith(f"{path}:{line}:")
    assert "unknown department 'ecology_environmnet'" in str(info.value)
    assert info.value.line == line


def test_taxonomy_duplicate_code_names_line(tmp_path):
    path = _write(tmp_path, "tax.yaml", TAXONOMY_OK_HEAD + """
  - {code: "500101", name_zh: 重复, name_en: Dup, department: market_regulation, kind: case}
""")
    with pytest.raises(TaxonomyError, match=rf"tax\.yaml:{_line_of(path, '重复')}: duplicate category code '500101'"):
        load_taxonomy(path)


def test_taxonomy_rejects_unquoted_code_and_bad_kind(tmp_path):
    path = _write(tmp_path, "tax.yaml", TAXONOMY_OK_HEAD + """
  - {code: 200101, name_zh: 异味, name_en: Odour, department: market_regulation, kind: case}
""")
    with pytest.raises(TaxonomyError, match=rf":{_line_of(path, '异味')}: .*must be a string"):
        load_taxonomy(path)
    path = _write(tmp_path, "tax2.yaml", TAXONOMY_OK_HEAD + """
  - {code: "200101", name_zh: 异味, name_en: Odour, department: market_regulation, kind: nuisance}
""")
    with pytest.raises(TaxonomyError, match="kind 'nuisance' is not one of"):
        load_taxonomy(path)


def test_taxonomy_yaml_syntax_error_names_line(tmp_path):
    path = _write(tmp_path, "tax.yaml", TAXONOMY_OK_HEAD + '  - {code: "1", name_zh: [unclosed\n')
    with pytest.raises(TaxonomyError) as info:
        load_taxonomy(path)
    assert str(info.value).startswith(str(path) + ":")
    assert info.value.line is not None and info.value.line >= 6


# --------------------------------------------------------------------------- shipped tenants


def test_all_shipped_tenants_load(taxonomy):
    tenants = load_all_tenants(TENANTS_DIR, taxonomy)
    assert {"nyc", "fuzhou", "demo-market", "demo-grid"} <= set(tenants)
    for name, tenant in tenants.items():
        assert tenant.tenant == name
        assert tenant.tzinfo is not None


def test_nyc_places_cover_sample_community_boards(taxonomy):
    nyc = load_tenant("nyc", TENANTS_DIR, taxonomy)
    assert nyc.timezone == "America/New_York"
    boroughs = {"MANHATTAN": "1", "BRONX": "2", "BROOKLYN": "3", "QUEENS": "4", "STATEN ISLAND": "5"}
    for code, name in [("1", "Manhattan"), ("2", "Bronx"), ("3", "Brooklyn"), ("4", "Queens"),
                       ("5", "Staten Island"), ("0", "Unspecified")]:
        assert nyc.place(code).name_en == name
    with NYC_SAMPLE.open(encoding="utf-8") as fh:
        boards = {row["Community Board"] for row in csv.DictReader(fh)}
    expected = set()
    for board in boards:
        number, _, borough = board.partition(" ")
        if number.isdigit() and borough in boroughs:
            expected.add(boroughs[borough] + number)
    assert "405" in expected
    missing = {code for code in expected if nyc.place(code) is None}
    assert not missing
    assert nyc.place("405").name_zh == "皇后区第5社区委员会"
    assert nyc.place("405").parent == "4"
    assert [p.code for p in nyc.ancestors("405")] == ["4"]
    assert nyc.level_of("405") == "community_district"
    assert nyc.department_label("HPD", taxonomy) == "Department of Housing Preservation and Development"
    assert nyc.department_label("XYZ", taxonomy) == "XYZ"


def test_fuzhou_places(taxonomy):
    fz = load_tenant("fuzhou", TENANTS_DIR, taxonomy)
    assert fz.timezone == "Asia/Shanghai"
    assert {p.code: p.name_zh for p in fz.places} == {
        "3501": "福州市", "350102": "鼓楼区", "350103": "台江区", "350104": "仓山区",
        "350105": "马尾区", "350111": "晋安区",
    }
    assert fz.place("350102").parent == "3501"
    assert fz.level_of("350102") == "district"
    # an unlisted street code is owned by its district
    assert [p.code for p in fz.ancestors("350102001")] == ["3501", "350102"]
    assert fz.level_of("350102001") == "street"
    assert fz.place_label("350102").startswith("鼓楼区")
    assert fz.place_label("999999") == "999999"


def test_demo_market_shape(taxonomy):
    dm = load_tenant("demo-market", TENANTS_DIR, taxonomy)
    assert dm.timezone == "Asia/Shanghai"
    assert [p.code for p in dm.places_at("district")] == ["990101"]
    streets = dm.places_at("street")
    communities = dm.places_at("community")
    grids = dm.places_at("grid")
    assert (len(streets), len(communities), len(grids)) == (3, 9, 36)
    for place, length in [(streets[0], 9), (communities[0], 12), (grids[0], 15)]:
        assert len(place.code) == length
    for grid in grids:
        assert len(grid.code) == 15 and grid.code.isdigit()
        chain = [p.code for p in dm.ancestors(grid.code)]
        assert chain == ["990101", grid.code[:9], grid.code[:12]]
    for street in streets:
        assert len(dm.children(street.code)) == 3
    for community in communities:
        assert len(dm.children(community.code)) == 4


def test_demo_grid_shape(taxonomy):
    dg = load_tenant("demo-grid", TENANTS_DIR, taxonomy)
    assert len(dg.places_at("street")) == 1
    assert len(dg.places_at("community")) == 2
    assert len(dg.places_at("grid")) == 6
    for community in dg.places_at("community"):
        assert len(dg.children(community.code)) == 3


def test_default_tenants_dir_from_env(tmp_path, monkeypatch, taxonomy):
    (tmp_path / "fuzhou.yaml").write_text((TENANTS_DIR / "fuzhou.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setenv("GRIDCASE_TENANTS_DIR", str(tmp_path))
    assert set(load_all_tenants(taxonomy=taxonomy)) == {"fuzhou"}
    with pytest.raises(TenantConfigError, match="no tenant file"):
        load_tenant("nyc", taxonomy=taxonomy)


# --------------------------------------------------------------------------- broken tenants

GOOD_TENANT = """
tenant: t1
name_zh: 测试
name_en: Test
timezone: Asia/Shanghai
places:
  - {code: "990201", level: district, name_zh: 测试区, name_en: Test District}
  - {code: "990201001", level: street, name_zh: 测试街道, name_en: Test Street}
  - {code: "990201001001", level: community, name_zh: 测试社区, name_en: Test Community}
routing:
  rules:
    - {name: r1, category: "100110", place_prefix: "990201001", department: ecology_environment}
  use_taxonomy_defaults: true
"""


def _broken(tmp_path: Path, replace: str, by: str, name: str = "t1") -> Path:
    text = textwrap.dedent(GOOD_TENANT).lstrip("\n")
    assert replace in text
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace(replace, by), encoding="utf-8")
    return path


def test_good_tenant_loads(tmp_path, taxonomy):
    _broken(tmp_path, "r1", "r1")
    tenant = load_tenant("t1", tmp_path, taxonomy)
    assert tenant.routing.rules[0].department == "ecology_environment"
    assert tenant.place("990201001001").parent == "990201001"


@pytest.mark.parametrize(
    "replace,by,needle,reason",
    [
        ("department: ecology_environment", "department: ecology_environmnet", "ecology_environmnet",
         "unknown department 'ecology_environmnet'"),
        ('code: "990201001001"', 'code: "990201001"', '"990201001", level: community',
         "duplicate place code '990201001'"),
        ('code: "990201001001"', 'code: "880201001001"', "880201001001", "child without parent prefix"),
        ("level: street, name_zh: 测试街道", 'level: street, parent: "990201001001", name_zh: 测试街道',
         "测试街道", "does not start with parent '990201001001'"),
        ("level: community, name_zh: 测试社区", "level: district, name_zh: 测试社区",
         "测试社区", "level 'district' is not below its parent '990201001'"),
        ("timezone: Asia/Shanghai", "timezone: Asia/Beijing", "Asia/Beijing", "unknown timezone 'Asia/Beijing'"),
        ("tenant: t1", "tenant: t2", "tenant: t2", "does not equal the file stem 't1'"),
        ('category: "100110"', 'category: "999999"', "999999", "unknown category '999999'"),
        ("department: ecology_environment}", 'department: ecology_environment, hours: "25:00-06:00"}',
         "25:00", "is not HH:MM-HH:MM"),
        ('place_prefix: "990201001"', 'place_prefix: "110105"', "110105", "matches no place"),
        ("name: r1,", 'name: "taxonomy:r1",', "taxonomy:r1", "does not match"),
        ('{code: "990201", level: district', "{code: 990201, level: district", "990201, level",
         "must be a string"),
        ("name_en: Test Street}", "name_en: Test Street, colour: red}", "colour", "unknown key 'colour'"),
        ("use_taxonomy_defaults: true", "use_taxonomy_defaults: true\n  use_taxonomy_defaults: false",
         "use_taxonomy_defaults: false", "duplicate key"),
    ],
)
def test_broken_tenant_error_names_file_line_and_reason(tmp_path, taxonomy, replace, by, needle, reason):
    path = _broken(tmp_path, replace, by)
    with pytest.raises(TenantConfigError) as info:
        load_tenant("t1", tmp_path, taxonomy)
    line = _line_of(path, needle)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert reason in message
    assert info.value.path == str(path) and info.value.line == line


def test_broken_yaml_syntax_names_line(tmp_path, taxonomy):
    path = _broken(tmp_path, "name_en: Test\n", "name_en: [Test\n")
    with pytest.raises(TenantConfigError) as info:
        load_tenant("t1", tmp_path, taxonomy)
    assert str(info.value).startswith(f"{path}:")
    assert "invalid YAML" in str(info.value)
    assert info.value.line is not None


def test_load_all_tenants_reports_first_broken_file(tmp_path, taxonomy):
    _broken(tmp_path, "department: ecology_environment", "department: nowhere")
    with pytest.raises(TenantConfigError, match=r"t1\.yaml:\d+: .*unknown department 'nowhere'"):
        load_all_tenants(tmp_path, taxonomy)
