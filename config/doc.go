// Package config turns the process environment into a validated Config.
//
// Every variable is named RELAY_<NAME>; the full list with defaults and
// meanings is Usage. Load reads the process environment with envconfig
// (github.com/kelseyhightower/envconfig): CheckDisallowed rejects unknown
// RELAY_* names, and Process fills a spec struct whose tags carry each
// variable's default and meaning (Usage prints them with envconfig.Usagef).
// A variable that is set but empty is empty, not its default. Each spec field
// points at the Config field it sets, and its type is an envconfig.Decoder
// that validates as it parses, so the first bad variable in Usage order stops
// Load. Names come from split_words on the field names rather than
// envconfig:"NAME" tags, because envconfig would fall back to a tag's
// unprefixed name (LOG_LEVEL for RELAY_LOG_LEVEL) when the prefixed one is
// unset. Tests set the environment with t.Setenv.
//
// Errors: Load returns the first problem it finds as an *Error, a single line
// "config: RELAY_<NAME>: <what is wrong>" that wraps ErrUnknown (a RELAY_*
// name that is not a variable; with several, the first in sorted order) or
// ErrInvalid (a bad or missing value). envconfig's own errors are not shown:
// a ParseError repeats the raw value, so only the decoder's error is kept.
// Bad values are quoted (cut after 64 bytes), except the client secret, which
// never appears in an error or log, and URLs, whose user information (a
// password, or a NATS token) is shown as xxxxx. Files named by *_FILE and
// RELAY_NATS_CREDS must be readable when set; they are not parsed here.
//
// Secrets: RELAY_UPVEST_CLIENT_SECRET is a Secret, which prints, marshals and
// logs as [REDACTED]; only Reveal returns it. A Config prints (fmt, any verb),
// marshals (JSON) and logs (zerolog.LogObjectMarshaler) as the same view: every
// variable by name, with the secret and the user information of URLs redacted.
package config
