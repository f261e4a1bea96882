"""Validates an OpenAPI 3.1 document and prints it as JSON (for tests/openapi.rs).

Usage: python3 tests/openapi/validate.py docs/openapi.yaml

Exit status 0: valid, the document as JSON on stdout. 1: not valid OpenAPI 3.1
(every error on stderr). 3: a needed Python package is missing (scripts/test
installs them: openapi-spec-validator, which brings PyYAML).
"""

import json
import sys

try:
    import yaml
    from openapi_spec_validator import OpenAPIV31SpecValidator
except ImportError as e:
    print(f"MISSING: {e}", file=sys.stderr)
    sys.exit(3)


class Loader(yaml.SafeLoader):
    """YAML without implicit timestamps: an unquoted date stays a string, as in JSON."""


Loader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def main() -> int:
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        doc = yaml.load(f, Loader=Loader)
    if not isinstance(doc, dict) or not str(doc.get("openapi", "")).startswith("3.1."):
        print(f"{path}: not an OpenAPI 3.1 document (openapi: {doc.get('openapi')!r})", file=sys.stderr)
        return 1
    errors = list(OpenAPIV31SpecValidator(doc).iter_errors())
    for e in errors:
        where = "/".join(str(p) for p in getattr(e, "path", []) or [])
        print(f"{path}: {where}: {getattr(e, 'message', e)}", file=sys.stderr)
    if errors:
        return 1
    json.dump(doc, sys.stdout, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
