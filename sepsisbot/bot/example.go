package bot

// ExampleConfig is a commented configuration file; `medicus sepsisbot run
// --print-config` prints it. Relative paths are relative to the file.
const ExampleConfig = `# medicus sepsis bot configuration (TOML). Relative paths are relative to this file.

# The bot's homeserver and the CA certificate its TLS certificate chains to.
homeserver = "https://uk-freiburg.example:8448"
ca_file = "ca.pem"

# The bot's user (created with: medicus admin user add sepsis-bot --role bot).
# password_file is read for the first login only; afterwards the encrypted
# profile in profile_dir, locked by the age key in state_key_file (created if
# missing), holds the session. Keep both readable by the bot's account only.
user = "@sepsis-bot:uk-freiburg.example"
password_file = "bot.password"
profile_dir = "profile"
state_key_file = "state.key"

# Patient state (SQLite, durable) and the audit log of alerts, acknowledgements
# and escalations (SQLite).
data_dir = "data"

# Rooms. Invite the bot to both; it joins rooms it is invited to.
icu_room = "!replace-with-the-icu-room:uk-freiburg.example"
escalation_room = "!replace-with-the-on-call-room:uk-freiburg.example"
# An alert not acknowledged within this time is posted to escalation_room.
# "0s" disables escalation.
escalate_after = "30m"
# The daily summary, HH:MM in time_zone. time_zone also applies to HL7 v2
# timestamps sent without an offset.
summary_time = "07:00"
time_zone = "Europe/Berlin"

# The risk model: empty for the built-in one, or a file from
# 'medicus sepsisbot train'. threshold = 0 keeps the model's threshold; set it
# per site to trade sensitivity against alerts per patient-day.
model_file = ""
threshold = 0

# FHIR R4 endpoint: POST https://<fhir_listen>/fhir/Observation and transaction
# or batch Bundles to https://<fhir_listen>/fhir, with 'Authorization: Bearer
# <token in fhir_token_file>'. Empty fhir_listen disables it.
fhir_listen = "0.0.0.0:8443"
fhir_cert_file = "fhir.crt"
fhir_key_file = "fhir.key"
fhir_token_file = "fhir.token"

# HL7 v2 ORU^R01 over MLLP (plain TCP inside the hospital network; mllp_tls =
# true uses the FHIR certificate). Empty disables it.
mllp_listen = "0.0.0.0:2575"
mllp_tls = false

# Optional: poll a hospital FHIR server for new Observations instead of (or
# besides) being sent them. Empty poll_base disables polling.
poll_base = ""
poll_token_file = ""
poll_ca_file = ""
poll_interval = "1m"
`
