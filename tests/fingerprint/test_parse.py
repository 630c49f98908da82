"""The accelerator tools' parsers on recorded outputs (data/, see data/README.md)."""

from pathlib import Path

import pytest

from pytest_inference.fingerprint import parse, same_accelerator

DATA = Path(__file__).parent / "data"


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_nvidia_query_8x_h100():
    gpus = parse.nvidia_query(read("nvidia-smi-query-8xh100.csv"))
    assert len(gpus) == 8
    assert {(g["name"], g["driver"], g["memory_mib"]) for g in gpus} == {("NVIDIA H100 80GB HBM3", "535.129.03", 81559)}


def test_nvidia_query_1x_h200():
    assert parse.nvidia_query(read("nvidia-smi-query-1xh200.csv")) == [
        {"name": "NVIDIA H200", "driver": "550.90.07", "memory_mib": 143771}]


def test_nvidia_query_memory_not_available_is_kept_as_none():
    assert parse.nvidia_query("NVIDIA GB10, 580.95.05, [N/A]\n")[0]["memory_mib"] is None


@pytest.mark.parametrize("name,says", [
    ("nvidia-smi-failed.txt", "nvidia-smi says: NVIDIA-SMI has failed because it couldn't communicate"),
    ("nvidia-smi-query-truncated.csv", "line 2: memory '815' is not 'N MiB' (the output is cut short?)"),
    ("nvidia-smi-query-garbage.csv", "line 1 has 1 field(s), not 3"),
])
def test_nvidia_query_refuses_what_is_not_a_gpu_list(name, says):
    with pytest.raises(parse.ParseError) as e:
        parse.nvidia_query(read(name))
    assert says in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("text,says", [
    ("", "printed no GPU line"),
    ("No devices were found\n", "No devices were found"),
    ("NVIDIA H100 80GB HBM3, not-a-version, 81559 MiB\n", "driver version 'not-a-version' is not a version"),
    ("0x2330, 535.129.03, 81559 MiB\n", "no GPU name ('0x2330')"),
])
def test_nvidia_query_edge_cases(text, says):
    with pytest.raises(parse.ParseError, match=says.replace("(", r"\(").replace(")", r"\)")):
        parse.nvidia_query(text)


def test_cuda_version_from_the_header_and_from_q():
    assert parse.cuda_version(read("nvidia-smi-8xh100.txt")) == "12.2"
    assert parse.cuda_version(read("nvidia-smi-q-1xh200.txt")) == "12.4"
    assert parse.cuda_version("CUDA Version                              : Not Found\n") is None
    assert parse.cuda_version("garbage") is None


@pytest.mark.parametrize("name,driver", [("amd-smi-static-8xmi300x.json", "6.7.0"),
                                         ("amd-smi-static-8xmi300x-list.json", "6.3.6")])
def test_amd_smi_static_both_layouts(name, driver):
    gpus = parse.amd_smi_static(read(name))
    assert gpus == [{"name": "AMD Instinct MI300X", "driver": driver}] * 8


def test_amd_smi_generic_market_name_gives_way_to_the_board_product_name():
    text = ('{"gpu_data": [{"gpu": 0, "asic": {"market_name": "AMD Radeon Graphics"}, '
            '"board": {"product_name": "AMD Instinct MI300X OAM"}, "driver": {"version": "6.7.0"}}]}')
    assert parse.amd_smi_static(text)[0]["name"] == "AMD Instinct MI300X OAM"
    # a warning printed before the JSON (amd-smi on a newer Python) does not hide it
    assert parse.amd_smi_static("SyntaxWarning: 'return' in a 'finally' block\n" + text)[0]["driver"] == "6.7.0"


@pytest.mark.parametrize("text,says", [
    (None, "amd-smi printed JSON that does not parse"),
    ("usage: amd-smi [-h]", "amd-smi printed no JSON: usage: amd-smi [-h]"),
    ('{"gpu_data": "x"}', "neither a list of GPUs nor"),
    ("[]", "amd-smi listed no GPU"),
    ('[{"gpu": 0, "asic": {"market_name": "N/A", "device_id": "0x74a1"}}]', "amd-smi GPU 0: no product name"),
])
def test_amd_smi_static_refuses_broken_output(text, says):
    with pytest.raises(parse.ParseError) as e:
        parse.amd_smi_static(read("amd-smi-static-truncated.json") if text is None else text)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_amd_smi_version():
    assert parse.amd_smi_version(read("amd-smi-version.txt")) == "6.2.0"
    assert parse.amd_smi_version(read("amd-smi-version-rocm64.txt")) == "6.4.0"
    assert parse.amd_smi_version('[{"tool": "AMDSMI Tool", "rocm_version": "6.3.1"}]') == "6.3.1"
    assert parse.amd_smi_version("nothing here") is None


def test_rocm_smi_8x_mi300x():
    gpus, driver = parse.rocm_smi(read("rocm-smi-8xmi300x.json"))
    assert gpus == [{"name": "AMD Instinct MI300X OAM"}] * 8 and driver == "6.7.0"


def test_rocm_smi_old_key_case_and_bracketed_series():
    gpus, driver = parse.rocm_smi('{"card1": {"Card series": "Arcturus GL-XL [AMD Instinct MI100]"}, '
                                  '"card0": {"Card series": "Arcturus GL-XL [AMD Instinct MI100]"}}')
    assert len(gpus) == 2 and driver is None and same_accelerator("MI100", gpus[0]["name"])


@pytest.mark.parametrize("name,says", [
    ("rocm-smi-hex-only.json", "rocm-smi card0: no product name, only '0x74a1' (a PCI device id)"),
    ("rocm-smi-no-cards.json", "lists no card"),
])
def test_rocm_smi_never_guesses_a_name(name, says):
    with pytest.raises(parse.ParseError) as e:
        parse.rocm_smi(read(name))
    assert says in str(e.value)


@pytest.mark.parametrize("want,got,same", [
    ("MI300X", "AMD Instinct MI300X", True),
    ("MI300X", "AMD Instinct MI300X OAM", True),
    ("mi300x", "AMD INSTINCT MI300X", True),
    ("H100", "NVIDIA H100 80GB HBM3", True),
    ("H100 80GB", "NVIDIA H100 80GB HBM3", True),
    ("H200", "NVIDIA H200", True),
    ("H100", "NVIDIA H200", False),
    ("H200", "NVIDIA H100 80GB HBM3", False),
    ("MI300X", "AMD Instinct MI300A", False),
    ("MI300X", "NVIDIA H100 80GB HBM3", False),
    ("NVIDIA", "NVIDIA H100 80GB HBM3", False),  # a maker alone names no part
])
def test_accelerator_names_match_loosely(want, got, same):
    assert same_accelerator(want, got) is same
