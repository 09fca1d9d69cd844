// Package config turns the process environment into a validated Config.
//
// Every variable is named RELAY_<NAME>; the full list with defaults and
// meanings is Usage. Load takes the environment as a list in os.Environ form
// rather than reading the process environment, so callers (and tests) pass
// exactly what they mean and no global state is involved.
//
// The variables follow envconfig's conventions (prefix RELAY, a variable that
// is set but empty is empty, not its default, unknown RELAY_* names are an
// error), but Load does not call envconfig: envconfig v1.4 can only read the
// process environment (os.LookupEnv, with no hook), which would make Load
// ignore its argument or force tests to mutate the environment. Instead one
// table holds each variable's name, default, meaning and a flag.Value-like
// parser that also validates, and Load, Usage and the log view all walk it.
//
// Errors: Load returns the first problem it finds as an *Error, a single line
// "config: RELAY_<NAME>: <what is wrong>" that wraps ErrUnknown (a RELAY_*
// name that is not a variable) or ErrInvalid (a bad or missing value). Bad
// values are quoted (cut after 64 bytes), except the client secret, which
// never appears in an error or log, and URLs, whose user information (a
// password, or a NATS token) is shown as xxxxx. Files named by *_FILE and
// RELAY_NATS_CREDS must be readable when set; they are not parsed here.
//
// Secrets: RELAY_UPVEST_CLIENT_SECRET is a Secret, which prints, marshals and
// logs as [REDACTED]; only Reveal returns it. A Config prints (fmt, any verb),
// marshals (JSON) and logs (zerolog.LogObjectMarshaler) as the same view: every
// variable by name, with the secret and the user information of URLs redacted.
package config
