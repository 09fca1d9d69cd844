package subjects

import (
	"strings"
	"unicode/utf8"
)

const (
	// MaxTokenLen is the maximum length in bytes of the family and of the
	// state token; longer tokens are cut.
	MaxTokenLen = 64

	// Unknown stands in for an empty family or state.
	Unknown = "unknown"

	// deadLetterToken is the single token after the prefix for dead letters.
	deadLetterToken = "_deadletter"

	// ceTypePrefix starts every CloudEvent type.
	ceTypePrefix = "co.upvest"
)

// For returns the subject for an event of type eventType under prefix:
// <prefix>.<family>.<state>, lower-cased and sanitized as described in the
// package documentation. prefix must satisfy ValidPrefix.
func For(prefix, eventType string) string {
	family, state := split(eventType)
	var b strings.Builder
	b.Grow(len(prefix) + 2 + tokenLen(family) + tokenLen(state))
	b.WriteString(prefix)
	b.WriteByte('.')
	writeToken(&b, family)
	b.WriteByte('.')
	writeToken(&b, state)
	return b.String()
}

// Family returns the sanitized, lower-case family token of eventType, the
// same token For puts after the prefix: "USER_CHECK.PASSED" -> "user_check".
func Family(eventType string) string {
	family, _ := split(eventType)
	var b strings.Builder
	b.Grow(tokenLen(family))
	writeToken(&b, family)
	return b.String()
}

// EventType returns the CloudEvent type for eventType, built from the same
// tokens as For: "ORDER.FILLED" -> "co.upvest.order.filled".
func EventType(eventType string) string {
	return For(ceTypePrefix, eventType)
}

// DeadLetter returns the dead-letter subject under prefix,
// <prefix>._deadletter.
func DeadLetter(prefix string) string {
	return prefix + "." + deadLetterToken
}

// Stream returns the subject filter the stream captures, <prefix>.>.
func Stream(prefix string) string {
	return prefix + ".>"
}

// ValidPrefix reports whether prefix is usable as a subject prefix: one or
// more '.'-separated, non-empty tokens of printable ASCII other than '*' and
// '>' (so never a wildcard), with no whitespace or control characters.
func ValidPrefix(prefix string) bool {
	if prefix == "" {
		return false
	}
	for token := range strings.SplitSeq(prefix, ".") {
		if token == "" {
			return false
		}
		for i := 0; i < len(token); i++ {
			if !keep(token[i]) {
				return false
			}
		}
	}
	return true
}

// split cuts eventType on its first '.'; with no '.', the state is empty.
func split(eventType string) (family, state string) {
	family, state, _ = strings.Cut(eventType, ".")
	return family, state
}

// tokenLen is the length writeToken writes for s, or an upper bound of it.
func tokenLen(s string) int {
	switch {
	case s == "":
		return len(Unknown)
	case len(s) > MaxTokenLen:
		return MaxTokenLen
	default:
		return len(s)
	}
}

// writeToken writes s as one subject token: lower-cased, every byte keep
// refuses and every non-ASCII rune replaced by '_', cut after MaxTokenLen
// bytes, Unknown if s is empty.
func writeToken(b *strings.Builder, s string) {
	if s == "" {
		b.WriteString(Unknown)
		return
	}
	n := 0
	for i := 0; i < len(s) && n < MaxTokenLen; n++ {
		c := s[i]
		if c >= utf8.RuneSelf {
			_, size := utf8.DecodeRuneInString(s[i:])
			b.WriteByte('_')
			i += size
			continue
		}
		i++
		switch {
		case 'A' <= c && c <= 'Z':
			b.WriteByte(c + ('a' - 'A'))
		case keep(c):
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
	}
}

// keep reports whether the ASCII byte c may stand in a subject token as is:
// printable, not a space, and not '.', '*' or '>'.
func keep(c byte) bool {
	return '!' <= c && c <= '~' && c != '.' && c != '*' && c != '>'
}

// Families returns Upvest's documented event families, upper case as in
// event types and a subscription's type[] (ALL, the subscription's
// wildcard, is not one). Upvest adds families over time: an event of an
// unknown family is relayed all the same.
func Families() []string {
	return []string{
		"USER", "USER_CHECK", "ORDER", "ORDER_CANCELLATION", "EXECUTION", "POSITION",
		"CASH_BALANCE", "ACCOUNT", "ACCOUNT_GROUP", "INSTRUMENT", "REPORT", "TREASURY_REPORT",
		"DIRECT_DEBIT", "WITHDRAWAL", "PORTFOLIO", "PORTFOLIO_ALLOCATION", "PORTFOLIO_ORDER",
		"CORPORATE_ACTION", "ACCOUNT_VALUATION", "INTRADAY_ACCOUNT_VALUATION", "CASH_TRANSACTION",
		"SECURITY_TRANSACTION", "ACCOUNT_LIQUIDATION", "ACCOUNT_RETURNS", "VIRTUAL_CASH_INCREASE",
		"VIRTUAL_CASH_DECREASE", "FEE_COLLECTION", "SAVINGS_PLAN", "SAVINGS_PLAN_EXECUTION",
		"REBALANCING_EXECUTION_ORDER", "TAX_EXEMPTION",
	}
}
