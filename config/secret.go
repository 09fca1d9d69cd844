package config

import (
	"fmt"
	"log/slog"
	"strconv"
)

// redacted is what a non-empty Secret shows instead of its value.
const redacted = "[REDACTED]"

// Secret holds a credential. Every way of printing, marshalling or logging it
// (fmt with any verb, encoding/json, encoding.TextMarshaler, log/slog) shows
// [REDACTED], or nothing when it is empty; Reveal returns the value. The zero
// Secret is empty.
type Secret struct {
	value string
}

// NewSecret returns a Secret holding value.
func NewSecret(value string) Secret {
	return Secret{value: value}
}

// Decode implements envconfig.Decoder: it sets the secret to value and
// never fails, so no error ever repeats a secret.
func (s *Secret) Decode(value string) error {
	s.value = value
	return nil
}

// Reveal returns the secret value. Call it only where the value is used.
func (s Secret) Reveal() string {
	return s.value
}

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool {
	return s.value == ""
}

// String returns [REDACTED], or "" for an empty secret.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return redacted
}

// GoString returns a Go-syntax form with the value redacted.
func (s Secret) GoString() string {
	return "config.Secret(" + strconv.Quote(s.String()) + ")"
}

// Format implements fmt.Formatter so that no verb, not even a wrong one such
// as %d, reaches the value.
func (s Secret) Format(f fmt.State, verb rune) {
	switch {
	case verb == 'v' && f.Flag('#'):
		fmt.Fprint(f, s.GoString())
	case verb == 'q':
		fmt.Fprint(f, strconv.Quote(s.String()))
	default:
		fmt.Fprint(f, s.String())
	}
}

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) {
	return []byte(strconv.Quote(s.String())), nil
}

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value {
	return slog.StringValue(s.String())
}
