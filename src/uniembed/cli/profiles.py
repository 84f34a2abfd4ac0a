"""`uniembed profiles [NAME]`: the published model families' profiles, their sources and published scores."""
from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("profiles", help="list model profiles (how each published family embeds), "
                                                    "with sources and published scores")
    parser.add_argument("name", nargs="?", help="show one profile in full (its settings and task instructions)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..models.profile import available_profiles, get_profile

    profiles = [get_profile(args.name)] if args.name else available_profiles()
    summaries = [p.summary() for p in profiles]
    if args.json:
        print(json.dumps(summaries if not args.name else summaries[0], indent=2))
        return 0
    for profile, summary in zip(profiles, summaries):
        print(f"{profile.name}  ({profile.family}; backbones: {', '.join(profile.backbones)})")
        print(f"  {profile.description}")
        print(f"  inference code: {profile.inference_code}")
        print(f"  checked against it: {profile.checked} ({summary['checked_means']})"
              + (f"; {profile.check_note}" if profile.check_note else ""))
        if profile.variants:
            print(f"  follows: {profile.follows}; other variants: "
                  + ", ".join(f"{profile.name}:{name}" for name in profile.variants))
        for model, scores in profile.published.items():
            print(f"  published {model}: {scores}")
        if profile.benchmark_settings:
            print(f"  benchmark settings: {profile.benchmark_settings}")
        print(f"  sources: {'; '.join(profile.sources)}")
        if args.name:
            print("  settings:")
            for key, value in profile.embedding.items():
                print(f"    {key:24s} {value!r}")
            for entry in profile.tasks:
                print(f"  tasks {', '.join(entry.tasks)}: query {entry.query!r}, candidate {entry.candidate!r}"
                      + (f", layout {dict(entry.layout)}" if entry.layout else "") + f"  [{entry.source}]")
        print()
    return 0
