"""Write the schema's SDL to ``schema.graphql`` (a test checks it is current)."""

from __future__ import annotations

from pathlib import Path

from resolvers.schema import build_schema


def main() -> None:
    path = Path(__file__).resolve().parent.parent / "schema.graphql"
    path.write_text(str(build_schema()) + "\n", "utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
