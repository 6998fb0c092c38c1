"""What a build reads besides the settings' variables, the context and the images: declared once,
for the fingerprint (build/inputs.py, through settings) and the replay's watch (build/record.py).
Which builder buildx uses is observed as buildx decides it (docker/endpoint.builder_identity).

Standard library only: the replay runs in nox's own interpreter.
"""

from __future__ import annotations

from collections.abc import Mapping

# buildx's own variables (BUILDX_GIT_LABELS adds labels, BUILDKIT_MULTI_PLATFORM changes the
# output's shape, …): any of them may change what it builds, so every one counts, by prefix.
BUILDX_PREFIXES = ("BUILDX_", "BUILDKIT_")
# Read by buildx (SOURCE_DATE_EPOCH sets timestamps) or by the settings' defaults (the CA
# bundle's default is SSL_CERT_FILE; HOME places docker's config and the caches).
OTHER_VARIABLES = ("SOURCE_DATE_EPOCH", "SSL_CERT_FILE", "HOME")
# Where fingerprints are turned off (the settings' SANDBOX_FAST_PATH).
OFF_VARIABLE = "SANDBOX_FAST_PATH"
OFF_VALUES = ("0", "off", "false", "no", "n", "f")


def buildx_env(env: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in sorted(env.items())
        if value and (name.startswith(BUILDX_PREFIXES) or name == "SOURCE_DATE_EPOCH")
    }


def fast_path_off(env: Mapping[str, str]) -> bool:
    """SANDBOX_FAST_PATH=off (any case, as the settings read it): never skip, never replay."""
    values = [v for k, v in env.items() if k.upper() == OFF_VARIABLE and v != ""]
    return bool(values) and values[-1].strip().lower() in OFF_VALUES
