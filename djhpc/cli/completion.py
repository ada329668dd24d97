"""``djhpc completion bash|zsh``: a shell completion script, generated from the command's own parser so that it
knows every command, subcommand, option and choice of this version."""

from __future__ import annotations

import argparse
import re

from ..profile import AFTER_TYPES, MAIL_TYPES, SCHEDULER_ALIASES, SCHEDULER_NAMES

HELP = """Print a completion script for bash or zsh: commands, subcommands, options, and the choices of options
such as --scheduler and --order; TARGET completes file names.

  bash:  eval "$(djhpc completion bash)"      in ~/.bashrc, or once for good:
         djhpc completion bash > ~/.local/share/bash-completion/completions/djhpc
  zsh:   eval "$(djhpc completion zsh)"       in ~/.zshrc
"""

SHELLS = ("bash", "zsh")
# values argparse takes as text but that have known choices
KNOWN_VALUES = {"--scheduler": (*SCHEDULER_NAMES, *SCHEDULER_ALIASES), "--after-type": AFTER_TYPES,
                "--mail-type": MAIL_TYPES}
_WORD = re.compile(r"[A-Za-z0-9_.:,+=/-]+")  # what may stand unquoted in the generated script

BASH = r"""# bash completion for djhpc (djhpc completion bash)
_djhpc() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="" path="" i w skip=0
    (( COMP_CWORD > 0 )) && prev="${COMP_WORDS[COMP_CWORD-1]}"
    for (( i = 1; i < COMP_CWORD; i++ )); do
        w="${COMP_WORDS[i]}"
        if (( skip )); then skip=0; continue; fi
        if [[ "$w" == -* ]]; then
            [[ "$w" != *=* ]] && _djhpc_takes_value "$path" "$w" && skip=1
            continue
        fi
        _djhpc_is_command "${path:+$path }$w" && path="${path:+$path }$w"
    done
    local choices
    if [[ "$prev" == -* ]] && _djhpc_takes_value "$path" "$prev"; then
        choices="$(_djhpc_choices "$path" "$prev")"
        if [[ -n "$choices" ]]; then
            COMPREPLY=( $(compgen -W "$choices" -- "$cur") )
        elif _djhpc_file_value "$path" "$prev"; then
            COMPREPLY=( $(compgen -f -- "$cur") )
        fi
        return 0
    fi
    if [[ "$cur" == -* ]]; then
        COMPREPLY=( $(compgen -W "$(_djhpc_options "$path")" -- "$cur") )
        return 0
    fi
    COMPREPLY=( $(compgen -W "$(_djhpc_subcommands "$path")" -- "$cur") )
    _djhpc_takes_files "$path" && COMPREPLY+=( $(compgen -f -- "$cur") )
    return 0
}
%(tables)s
complete -o filenames -F _djhpc djhpc
"""

ZSH = """#compdef djhpc
# zsh completion for djhpc (djhpc completion zsh): the bash function, through zsh's bashcompinit
(( ${+functions[compdef]} )) || { autoload -U +X compinit && compinit -i; }
autoload -U +X bashcompinit && bashcompinit
"""


def register(sub):
    p = sub.add_parser("completion", help="print a bash or zsh completion script", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help="bash or zsh")
    p.set_defaults(func=run)


def run(args) -> int:
    script = BASH % {"tables": _tables(args.top_parser)}
    print((ZSH + script) if args.shell == "zsh" else script, end="")
    return 0


def _commands(parser, path=()):
    """(path, parser) of the top level and of every command below it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action._name_parser_map.items():
                yield from _commands(child, (*path, name))


def _words(parser) -> tuple[list[str], bool]:
    """The words that may come next without a dash (subcommands, a positional's choices), and whether a file
    name may (a TARGET, or jobs' word that is a TARGET when it is not a subcommand)."""
    words, files = [], False
    for action in parser._actions:
        if action.option_strings:
            continue
        if isinstance(action, argparse._SubParsersAction):
            words += list(action._name_parser_map)
            files = files or action.choices is not action._name_parser_map  # any word accepted
        elif action.choices:
            words += [str(c) for c in action.choices]
        else:
            files = True
    return words, files


def _case(function: str, arms: list[tuple[str, str]], *, status: bool = False) -> str:
    """A bash function that switches on its arguments joined by '|': echo the words of the arm (or succeed)."""
    body = "".join(f"        '{key}') {'return 0' if status else 'echo ' + _quote(words)};;\n"
                   for key, words in arms if words or status)
    tail = "        *) return 1;;\n" if status else ""
    return f'{function}() {{\n    case "$1|$2" in\n{body}{tail}    esac\n}}\n'


def _quote(words: str) -> str:
    return f"'{words}'"


def _tables(top) -> str:
    commands, subs, files, options, values, choices, file_values = [], [], [], [], [], [], []
    for path, parser in _commands(top):
        key = " ".join(path)
        if path:
            commands.append((f"{key}|", "x"))
        words, takes_files = _words(parser)
        subs.append((f"{key}|", " ".join(words)))
        if takes_files:
            files.append((f"{key}|", "x"))
        flags = []
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            flags += action.option_strings
            if action.nargs == 0:
                continue
            for flag in action.option_strings:
                values.append((f"{key}|{flag}", "x"))
                if str(action.metavar) in ("FILE", "DIR", "PATH"):
                    file_values.append((f"{key}|{flag}", "x"))
                known = action.choices or KNOWN_VALUES.get(flag)
                if known:
                    choices.append((f"{key}|{flag}", " ".join(str(c) for c in known)))
        options.append((f"{key}|", " ".join(flags)))
    for _, words in subs + options + choices:
        assert all(_WORD.fullmatch(w) for w in words.split()), words  # nothing the script would have to quote
    return "\n".join([
        _case("_djhpc_is_command", commands, status=True),
        _case("_djhpc_takes_value", values, status=True),
        _case("_djhpc_takes_files", files, status=True),
        _case("_djhpc_file_value", file_values, status=True),
        _case("_djhpc_subcommands", subs),
        _case("_djhpc_options", options),
        _case("_djhpc_choices", choices),
    ])
