"""The docs in docs/ run as written and say what the code does.

- A ```python block that starts with `import` runs in a fresh process (in an empty
  folder, with tests/plugins on PYTHONPATH); a ```text block right after it is its output.
- A ```python block whose first line is `# path/to/file.py` is an excerpt: each of its
  lines (whitespace runs and a trailing ` ...` aside) is a line of that file.
- In docs/extending.md the other ```python blocks, in order, are
  tests/plugins/reinforce_plugin.py, and its commands run in order, in a fresh folder.
- Every `fewshot` command in a ```bash block parses (`fewshot train` as far as building
  the run's config); every `$ fewshot train` of a ```console block fails as shown.
- The flags, algorithm settings, modules, files and links the prose names exist.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import tasks
from fewshot import cli, plugins, registry
from fewshot.eval.records import Records
from fewshot.eval.task_sets import task_sets_from_json
from fewshot.run.arguments import parse_train_args

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PLUGINS = ROOT / "tests" / "plugins"
PLUGIN = PLUGINS / "reinforce_plugin.py"
DOC_FILES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"```(\w*)\n(.*?)```", re.S)
EXCERPT = re.compile(r"# ([\w/.-]+\.py)\n")
NAMED_FILE = re.compile(r"# ([\w.-]+\.yaml)\n")
COMMANDS = ("families", "algorithms", "demo", "rollouts", "evaluate", "compare", "predict",
            "sweep")
# flags that no longer exist, named once, in training.md's note on the old layout
REMOVED = ("--meta_batch_size", "--episodes_per_task", "--hidden_sizes", "--activation",
           "--gamma", "--gae_lambda", "--ppo.episodes_per_trial")


@dataclass(frozen=True)
class Block:
    doc: str
    index: int        # position among the doc's fenced blocks
    lang: str
    code: str
    output: str | None  # the ```text block right after it, if any


def fenced(doc: Path) -> list[Block]:
    text = doc.read_text()
    found = list(FENCE.finditer(text))
    blocks = []
    for i, match in enumerate(found):
        after = found[i + 1] if i + 1 < len(found) else None
        output = (after.group(2) if after is not None and after.group(1) == "text"
                  and not text[match.end():after.start()].strip() else None)
        blocks.append(Block(doc.name, i, match.group(1), match.group(2), output))
    return blocks


def all_blocks(lang: str) -> list[Block]:
    return [b for doc in DOC_FILES for b in fenced(doc) if b.lang == lang]


def is_runnable(block: Block) -> bool:
    return block.code.startswith("import")


def is_excerpt(block: Block) -> bool:
    return EXCERPT.match(block.code) is not None


def commands(block: Block) -> list[list[str]]:
    """The `fewshot ...` lines of a shell block, split as the shell would."""
    return [shlex.split(line, comments=True) for line in block.code.splitlines()
            if line.startswith("fewshot ")]


@pytest.fixture(scope="module")
def plugin_importable():
    """reinforce_plugin importable in this process (its family and algorithm registered)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PLUGINS))
        plugins.import_plugin("reinforce_plugin")
        yield


# Python blocks ------------------------------------------------------------------------

RUNNABLE = [b for b in all_blocks("python") if is_runnable(b)]
EXCERPTS = [b for b in all_blocks("python") if is_excerpt(b)]

# Extra code run after a block, and checks of its output, by a line the block contains.
EXTRA = {
    'family = tasks.get("cheetah-vel")':
        "\nprint(obs.shape, len(envs.tasks), env.unwrapped.task)\n",
    "class TargetHeight:": """
import gymnasium
assert tasks.get("cheetah-height") is family
assert set(info) >= {"reward_forward", "reward_height", "reward_ctrl"}
total = info["reward_forward"] + info["reward_height"] + info["reward_ctrl"]
assert abs(total - reward).max() < 1e-12
ood = family.sample(50, "test-ood", np.random.default_rng(1))
assert all(0.2 <= t.target_height < 0.4 for t in ood)
env = gymnasium.make("fewshot/cheetah-height-v0")
print(env.reset(seed=0)[0].shape, obs.shape)
""",
}
CHECKS = {
    'family = tasks.get("cheetah-vel")':
        lambda out: out.startswith("(20, 17) 20 CheetahVelTask(goal_velocity=2."),
    "class TargetHeight:": lambda out: out.strip() == "(17,) (8, 17)",
    "oracle = evaluate(": lambda out: "### oracle" in out and "### random" in out
                                      and "Rate of `success`" in out,
}


def keyed(block: Block, table: dict):
    keys = [key for key in table if key in block.code]
    assert len(keys) <= 1, keys
    return table[keys[0]] if keys else None


def test_every_python_block_is_run_checked_against_its_source_or_is_the_plugin():
    for key in list(EXTRA) + list(CHECKS):
        assert sum(key in b.code for b in RUNNABLE) == 1, key
    plugin_blocks = []
    for doc in DOC_FILES:
        for block in fenced(doc):
            if block.lang == "python" and not (is_runnable(block) or is_excerpt(block)):
                assert doc.name == "extending.md", (
                    f"{doc.name}, block {block.index}: a python block must start with "
                    "an import (it is run) or with `# path/to/file.py` (an excerpt)")
                plugin_blocks.append(block.code)
    assert len(plugin_blocks) >= 5
    assert "".join(plugin_blocks) == PLUGIN.read_text(), (
        "docs/extending.md's plugin blocks, joined, must be tests/plugins/reinforce_plugin.py")
    worked = next(b for b in RUNNABLE if "class TargetHeight:" in b.code)
    assert len(worked.code.strip().splitlines()) <= 35


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: f"{b.doc}:{b.index}")
def test_python_examples_run_and_print_what_the_docs_show(block, tmp_path):
    code = block.code + (keyed(block, EXTRA) or "")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env={**os.environ,
                                                          "PYTHONPATH": str(PLUGINS)})
    assert done.returncode == 0, done.stderr
    if block.output is not None:
        assert done.stdout == block.output
    check = keyed(block, CHECKS)
    if check is not None:
        assert check(done.stdout), done.stdout


def normalized(line: str) -> str:
    line = " ".join(line.split())
    return line.removesuffix(" ...")


@pytest.mark.parametrize("block", EXCERPTS, ids=lambda b: f"{b.doc}:{b.index}")
def test_excerpts_match_their_source(block):
    source = ROOT / EXCERPT.match(block.code).group(1)
    lines = {normalized(line) for line in source.read_text().splitlines()}
    for line in block.code.splitlines()[1:]:
        line = normalized(line)
        if line and not line.startswith("#") and line != "...":
            assert line in lines, f"{block.doc}: {line!r} is not a line of {source}"


# The extending guide, run -------------------------------------------------------------

def test_the_extending_guide_runs_as_written(tmp_path):
    blocks = fenced(DOCS / "extending.md")
    task_sets = [b for b in blocks if b.lang == "json"]
    assert len(task_sets) == 1
    lines = [args for b in blocks if b.lang == "bash" for args in commands(b)]
    assert any("--resume" in args for args in lines)
    assert any(args[1] == "evaluate" for args in lines)
    given = next(args[args.index("--task-set") + 1] for args in lines if "--task-set" in args)
    (tmp_path / given).write_text(task_sets[0].code)
    stdout = ""
    for args in lines:
        done = subprocess.run([sys.executable, "-m", "fewshot.cli", *args[1:]],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path,
                              env={**os.environ, "PYTHONPATH": str(PLUGINS)})
        assert done.returncode == 0, f"{shlex.join(args)}\n{done.stderr}"
        stdout += done.stdout
    shown = [b.code for b in blocks if b.lang == "text"
             and not (b.index > 0 and blocks[b.index - 1].lang == "python"
                      and blocks[b.index - 1].output == b.code)]
    assert len(shown) >= 2
    for text in shown:
        for line in text.splitlines():
            assert line in stdout, line
    run = tmp_path / next(args[args.index("--out") + 1] for args in lines if "--resume" in args)
    config = [b.code for b in blocks if b.lang == "yaml"]
    assert config == [(run / "config.yaml").read_text()]
    assert (run / "metrics.csv").read_text().count("\n") == 1 + 40
    records = Records.read_csv(run / "evaluation" / "records.csv.gz")
    assert records.outcomes == ["success"]
    assert records.unique("split") == ["test-id", "near", "test-ood"]


# Commands in shell blocks -------------------------------------------------------------

BASH = [(b, args) for b in all_blocks("bash") for args in commands(b)]


def known_learners() -> set[str]:
    names = set(registry.reference_names())
    for algo in registry.names():
        names |= set(registry.get(algo).learners)
    return names


def parse_train(args: list[str]) -> tuple[int, str]:
    """Exit status and stderr of parsing `fewshot train ARGS` (0: parsed, or --help)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parse_train_args(args)
        except SystemExit as error:
            return int(error.code or 0), err.getvalue()
    return 0, err.getvalue()


@pytest.mark.parametrize(("block", "args"), BASH,
                         ids=[f"{b.doc}:{shlex.join(a)[:60]}" for b, a in BASH])
def test_commands_in_the_docs_parse(block, args, tmp_path, monkeypatch, plugin_importable):
    monkeypatch.chdir(tmp_path)
    for doc in DOC_FILES:
        for b in fenced(doc):
            named = NAMED_FILE.match(b.code)
            if b.lang == "yaml" and named:
                (tmp_path / named.group(1)).write_text(b.code)
    assert args[0] == "fewshot"
    if args[1] == "train":
        status, err = parse_train(args[2:])
        assert status == 0, err
        return
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            parsed = cli.build_parser().parse_args(args[1:])
        except SystemExit as error:
            assert error.code == 0
            return
    if args[1] == "evaluate":
        assert parsed.learner in known_learners()


CONSOLE = [(b, cmd) for b in all_blocks("console") for cmd in b.code.split("$ ")[1:]]


@pytest.mark.parametrize(("block", "shown"), CONSOLE,
                         ids=[f"{b.doc}:{c.splitlines()[0][:60]}" for b, c in CONSOLE])
def test_console_examples_fail_with_the_error_shown(block, shown, plugin_importable):
    command, *output = shown.strip().splitlines()
    args = shlex.split(command)
    assert args[:2] == ["fewshot", "train"], "only `fewshot train` errors are checked"
    status, err = parse_train(args[2:])
    assert status == 2
    assert output
    for line in output:
        assert line in err, err


# What the prose names -----------------------------------------------------------------

def help_flags(text: str) -> set[str]:
    return {flag.rstrip(".") for flag in re.findall(r"--[\w.-]+", text)}


@functools.cache
def known_flags() -> frozenset[str]:
    """Every flag `fewshot train --algo A --help` shows for every algorithm (and family
    with options), and every flag of the other commands."""
    flags: set[str] = set()

    def help_text(run) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            run()
        return out.getvalue()

    for algo in registry.names():
        flags |= help_flags(help_text(lambda a=algo: parse_train_args(["--algo", a,
                                                                       "--help"])))
    for family in tasks.names():
        if tasks.options(family):
            flags |= help_flags(help_text(lambda f=family: parse_train_args(
                ["--family", f, "--help"])))
    for command in COMMANDS:
        flags |= help_flags(help_text(lambda c=command: cli.main([c, "--help"])))
    return frozenset(flags)


def prose(doc: Path) -> str:
    return FENCE.sub("", doc.read_text())


def code_spans(doc: Path) -> list[str]:
    return re.findall(r"`([^`]+)`", prose(doc))


def check_flag(flag: str) -> None:
    flag = flag.split("=")[0]
    section, dot, name = flag[2:].partition(".")
    if dot and (name == "*" or name.isupper()):  # --rl2.*, --family_options.NAME
        assert section in [*registry.names(), "family_options", "<name>"], flag
    else:
        assert flag in known_flags(), f"{flag} is not a flag of any fewshot command"


def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                value = getattr(value, part)
        except AttributeError:
            return False
        return True
    return False


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda d: d.name)
def test_the_flags_settings_modules_and_files_the_prose_names_exist(doc, plugin_importable):
    settings = {name: {f.name for f in dataclasses.fields(registry.get(name).config)}
                for name in registry.names()}
    for span in code_spans(doc):
        tokens = span.split()
        if span.startswith(("fewshot ", "--")):
            for token in tokens:
                if token.startswith("--") and token not in REMOVED:
                    check_flag(token)
        setting = re.match(r"(?:--)?([\w-]+)\.(\w+)$", tokens[0])
        if (setting and setting.group(1) in settings and tokens[0] not in REMOVED
                and not setting.group(2).isupper()):  # --reinforce.FIELD: a placeholder
            assert setting.group(2) in settings[setting.group(1)], span
        module = re.match(r"((?:fewshot|tasks)(?:\.\w+)+)", span)
        if module and not re.fullmatch(r"\w+\.(json|yaml|csv|gz|png|md)", span):
            assert resolves(module.group(1)), f"{doc.name}: {module.group(1)} not found"
        for token in tokens:
            if re.fullmatch(r"(fewshot|tasks|tests|benchmarks|docs)/[\w./+-]*", token) \
                    and not re.search(r"-v\d+$", token):  # fewshot/<family>-v0: an env id
                assert (ROOT / token).exists(), f"{doc.name}: no file {token}"
    headings = {re.sub(r"[^\w -]", "", h.lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.*)$", prose(doc), flags=re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", prose(doc)):
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        if path:
            assert (DOCS / path).exists(), f"{doc.name}: broken link {target}"
        elif anchor:
            assert anchor in headings, f"{doc.name}: no heading for #{anchor}"


def test_removed_flags_are_gone_and_named_only_in_the_note_on_the_old_layout():
    text = "".join(prose(doc) for doc in DOC_FILES)
    for flag in REMOVED:
        assert flag not in known_flags(), flag
        assert len(re.findall(re.escape(flag) + r"(?![\w.])", text)) == 1, flag
    assert "`--ppo.episodes_per_trial` is `--rl2.episodes_per_trial`" in prose(
        DOCS / "training.md")


def test_task_sets_entry_points_and_named_configs_in_the_docs_are_valid(plugin_importable):
    for block in all_blocks("json"):
        data = json.loads(block.code)
        family = tasks.get(data["family"])
        assert task_sets_from_json(family, data, source=block.doc)
    entry_points = [tomllib.loads(b.code) for b in all_blocks("toml")]
    assert entry_points
    for table in entry_points:
        for value in table["project"]["entry-points"]["fewshot.plugins"].values():
            assert importlib.import_module(value.split(":")[0])
    for block in all_blocks("yaml"):
        assert isinstance(yaml.safe_load(block.code), dict)
        assert NAMED_FILE.match(block.code) or block.doc == "extending.md"


def test_the_demo_figure_is_there():
    assert (DOCS / "images" / "demo-adaptation-curves.png").is_file()
