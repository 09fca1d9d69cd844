// Package config turns the environment into a validated Config.
//
// Every variable is named RELAY_<NAME> and declared once, in the variables
// table: name, default, one-line meaning, and the Config field it sets,
// typed so that its Decode (an envconfig.Decoder) parses and validates and
// its String shows the value with credentials redacted. That table drives
// parsing (FromEnviron, and Load over the process environment), the
// redacted views of a Config (fmt, JSON, zerolog), Usage (the --help table)
// and Reference (the generated docs/configuration.md). Rules that involve
// several variables are a second table, rules, checked after every variable
// has decoded and listed in Reference too. envconfig's reflection walker is
// not used: it reads only the process environment, and tests give
// FromEnviron their own environment so that they can run in parallel.
//
// A variable that is not set takes its default; one set but empty is empty
// (envconfig's rule), which for most variables is an error. Names without
// the prefix are ignored, so LOG_LEVEL or DATA_DIR meant for something else
// never configure the relay.
//
// Errors: FromEnviron returns the first problem it finds as an *Error, a
// single line "config: RELAY_<NAME>: <what is wrong>" that wraps ErrUnknown
// (a RELAY_* name that is not a variable; with several, the first in sorted
// order, with the closest known name suggested) or ErrInvalid (a bad or
// missing value). Bad values are quoted (cut after 64 bytes), except the
// client secret, which never appears in an error or log, and URLs, whose
// user information (a password, or a NATS token) is shown as xxxxx. Files
// named by *_FILE and RELAY_NATS_CREDS must be readable when set;
// certificate and key pairs must load together (tls.LoadX509KeyPair) and a
// CA file must hold a PEM certificate. Other files are not parsed here.
//
// Rules of the stream (its name, replicas, duplicate window) are broker's
// and checked by broker's functions here, so that they live in one place.
//
// Secrets: RELAY_UPVEST_CLIENT_SECRET is a Secret, which prints, marshals and
// logs as [REDACTED]; only Reveal returns it. A Config prints (fmt, any verb),
// marshals (JSON) and logs (zerolog.LogObjectMarshaler) as the same view: every
// variable by name, with the secret and the user information of URLs redacted.
package config
