# shellcheck shell=bash
# Local defaults shared by every script and test (docs/configuration.md, docs/architecture.md).
#
#   source scripts/env.sh          # in a shell, or from another script
#   eval "$(scripts/services env)" # the same, printed as export lines
#
# A variable that is already set wins over the default here.
# The same values work with the native services and with docker-compose.yml
# (the native PostgreSQL trusts 127.0.0.1, so the password is simply ignored there).

_env_repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Always this checkout, whatever the caller's environment says.
REPO_ROOT="${_env_repo_root}"
: "${TOOLS_DIR:=${REPO_ROOT}/.tools}"
: "${STATE_DIR:=${REPO_ROOT}/.state}"

# The defaults cargo gives every cargo command ([env] in .cargo/config.toml), read from there
# for what runs outside cargo (psql, the services), so that they are written once.
_env_in_section=0
while IFS= read -r _env_line; do
    if [[ "${_env_line}" == '['* ]]; then
        [[ "${_env_line}" == '[env]' ]] && _env_in_section=1 || _env_in_section=0
    elif ((_env_in_section)) && [[ "${_env_line}" =~ ^([A-Z0-9_]+)\ =\ (\{\ value\ =\ )?\"([^\"]*)\"(,\ relative\ =\ true)? ]]; then
        _env_value="${BASH_REMATCH[3]}"
        [[ -z "${BASH_REMATCH[4]}" ]] || _env_value="${REPO_ROOT}/${_env_value}"
        [[ -n "${!BASH_REMATCH[1]:-}" ]] || export "${BASH_REMATCH[1]}=${_env_value}"
    fi
done <"${REPO_ROOT}/.cargo/config.toml"
: "${KAFKA_SECURITY:=plaintext}"
: "${SMTP_HOST:=127.0.0.1}"
: "${SMTP_PORT:=1025}"
: "${SMTP_TLS:=none}"
: "${MAIL_FROM:=orders@example.com}"
# Orders placed without customerEmail (the original request body) are mailed here.
: "${NOTIFY_FALLBACK_TO:=order-desk@example.com}"
: "${MAILDEV_API_URL:=http://127.0.0.1:1080}"
# Python's boto3 and the aws CLI read this name; the Rust SDK reads AWS_REGION.
: "${AWS_DEFAULT_REGION:=${AWS_REGION}}"
# localstripe (scripts/services) stands in for Stripe; it accepts any sk_test_ key.
: "${STRIPE_API_BASE:=http://127.0.0.1:8420}"
: "${STRIPE_API_KEY:=sk_test_local}"
# The copies installed into .tools (above), or else ones already on PATH.
[[ -x "${TANSU_BIN}" ]] || TANSU_BIN="$(command -v tansu || echo "${TANSU_BIN}")"
[[ -x "${MAILDEV_BIN}" ]] || MAILDEV_BIN="$(command -v maildev || echo "${MAILDEV_BIN}")"

# Whether the system packages the workspace's build needs (cmake, OpenSSL's headers for
# librdkafka on x86_64) are installed; scripts/services installs them when they are not.
build_packages_present() {
    command -v cmake >/dev/null && pkg-config --exists openssl 2>/dev/null
}

export REPO_ROOT TOOLS_DIR STATE_DIR \
    DATABASE_URL KAFKA_BOOTSTRAP_SERVERS KAFKA_SECURITY \
    SMTP_HOST SMTP_PORT SMTP_TLS MAIL_FROM NOTIFY_FALLBACK_TO MAILDEV_API_URL \
    AWS_ENDPOINT_URL AWS_REGION AWS_DEFAULT_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
    TANSU_BIN MAILDEV_BIN STRIPE_API_BASE STRIPE_API_KEY

# The variables above, in the order `scripts/services env` prints them.
# shellcheck disable=SC2034
ENV_VARS=(DATABASE_URL KAFKA_BOOTSTRAP_SERVERS KAFKA_SECURITY
    SMTP_HOST SMTP_PORT SMTP_TLS MAIL_FROM NOTIFY_FALLBACK_TO MAILDEV_API_URL
    AWS_ENDPOINT_URL AWS_REGION AWS_DEFAULT_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
    TANSU_BIN MAILDEV_BIN TOOLS_DIR STATE_DIR STRIPE_API_BASE STRIPE_API_KEY)

unset _env_repo_root _env_in_section _env_line _env_value
