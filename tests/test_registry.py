"""egohod.registry.Registry: the one registry every kind of component uses."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from egohod.registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def test_register_get_entry_and_glob_list():
    reg = Registry("widget")

    @reg.register(size=3)
    def small_widget():
        """A small widget.

        More text."""

    @reg.register("big/widget")
    class Big:
        pass

    assert reg.get("small_widget") is small_widget and reg.get("big/widget") is Big
    entry = reg.entry("small_widget")
    assert entry.meta == {"size": 3} and entry.description == "A small widget."
    assert reg.list() == ["big/widget", "small_widget"] and reg.list("big/*") == ["big/widget"]
    assert "big/widget" in reg and "nope" not in reg and len(reg) == 2
    named = Registry("policy", name_attr="policy_name")
    assert named.register("mlp")(Big).policy_name == "mlp"


def test_unknown_name_suggests_close_names_and_lists_all():
    reg = Registry("policy", plural="policies")
    for name in ("mlp", "gmm", "rnn"):
        reg.add(name, object())
    with pytest.raises(KeyError) as e:
        reg.get("mpl")
    assert str(e.value) == "\"unknown policy 'mpl' (did you mean 'mlp'?); registered policies: gmm, mlp, rnn\""
    with pytest.raises(KeyError, match=r"unknown policy 'transformer'; registered policies: gmm, mlp, rnn"):
        reg.get("transformer")
    custom = Registry("expert", unknown="no scripted expert for task {name!r}")
    with pytest.raises(KeyError, match=r"no scripted expert for task 'toaster'; registered experts: \(none\)"):
        custom.get("toaster")


def test_a_taken_name_is_refused_naming_both_objects():
    reg = Registry("environment")

    def first():
        pass

    def second():
        pass

    reg.add("kitchen/x", first)
    reg.add("kitchen/x", first)  # the same object again (a module imported twice): fine
    with pytest.raises(ValueError, match=r"'kitchen/x' is already registered by .*first; cannot register .*second"):
        reg.add("kitchen/x", second)
    assert reg.get("kitchen/x") is first


def test_builtins_are_imported_on_first_look_up_only(tmp_path, monkeypatch):
    (tmp_path / "h17_widget_registry.py").write_text(textwrap.dedent("""
        from egohod.registry import Registry

        WIDGETS = Registry("widget", builtins=["h17_builtin_widgets"], optional_builtins=["h17_not_installed"])
    """))
    (tmp_path / "h17_builtin_widgets.py").write_text(textwrap.dedent("""
        from h17_widget_registry import WIDGETS

        @WIDGETS.register()
        def gear():
            pass
    """))
    (tmp_path / "h17_broken_widgets.py").write_text("raise RuntimeError('broken built-in')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from h17_widget_registry import WIDGETS

    assert "h17_builtin_widgets" not in sys.modules
    assert WIDGETS.list() == ["gear"] and "h17_builtin_widgets" in sys.modules  # the missing optional one skipped
    broken = Registry("widget", builtins=["h17_broken_widgets"])
    for _ in range(2):  # a failing built-in fails every look-up, never an empty list
        with pytest.raises(RuntimeError, match="broken built-in"):
            broken.list()


def test_the_component_registries_share_it():
    import envs
    import policies
    from egohod.hod.detectors import create_detector
    from egohod.hod.narrators import create_narrator
    from egohod.models.registry import ENCODERS, MODELS
    from envs.experts import make_expert

    assert {type(r) for r in (MODELS, ENCODERS)} == {Registry}
    for call, arg, close in ((policies.create_policy, "mpl", "mlp"), (create_detector, "skn", "skin"),
                             (create_narrator, "templat", "template"), (envs.make, "kitchen/microwav", "kitchen/microwave"),
                             (make_expert, "kitchen/microwav", "microwave")):
        with pytest.raises(KeyError, match=f"did you mean '{close}'"):
            call(arg) if call is not policies.create_policy else call(arg, 1, 1, 1)


def test_importing_envs_and_the_registry_does_not_import_torch():
    code = "import sys, envs, envs.experts, egohod.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=str(ROOT))
    assert out.stdout.strip() == "False"


def test_options_and_schemas_come_from_each_components_options_dataclass():
    from dataclasses import dataclass

    from egohod.config import ConfigError

    @dataclass(frozen=True)
    class SmallOptions:
        width: int = 4
        sizes: tuple = (1, 2)

    reg = Registry("widget")

    @reg.register("a", options=SmallOptions)
    class A:
        pass

    @reg.register("b")
    class B:
        Options = SmallOptions

    reg.add("c", object())
    assert reg.options("a", {"width": 8, "sizes": [3]}) == SmallOptions(8, (3,))
    assert reg.options("b", {"name": "b"}) == SmallOptions()
    with pytest.raises(ConfigError, match=r"widget 'a': unknown option\(s\) \['widht'\] \(did you mean 'width'\?\)"):
        reg.options("a", {"widht": 8})
    with pytest.raises(ConfigError, match="settings named 'b' given to widget 'a'"):
        reg.options("a", {"name": "b"})
    with pytest.raises(TypeError, match="widget 'c'.*declares no Options"):
        reg.options("c")
    reg._entries.pop("c")
    schemas = reg.schemas()
    assert sorted(schemas) == ["a", "b"] and schemas["a"]().sizes == [1, 2] and schemas["b"]().name == "b"
