package subjects_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/upvest-relay/upvest-relay/subjects"
)

func TestFor(t *testing.T) {
	long := strings.Repeat("A", 100)
	tests := []struct {
		name, prefix, eventType, want string
	}{
		{"contract order", "upvest", "ORDER.FILLED", "upvest.order.filled"},
		{"contract user check", "upvest", "USER_CHECK.PASSED", "upvest.user_check.passed"},
		{"account group", "upvest", "ACCOUNT_GROUP.ACTIVE", "upvest.account_group.active"},
		{"multi-token prefix", "acme.prod", "ORDER.FILLED", "acme.prod.order.filled"},
		{"already lower case", "upvest", "order.filled", "upvest.order.filled"},
		{"no dot", "upvest", "ORDER", "upvest.order.unknown"},
		{"empty", "upvest", "", "upvest.unknown.unknown"},
		{"only a dot", "upvest", ".", "upvest.unknown.unknown"},
		{"dots", "upvest", "...", "upvest.unknown.__"},
		{"empty family", "upvest", ".FILLED", "upvest.unknown.filled"},
		{"empty state", "upvest", "ORDER.", "upvest.order.unknown"},
		{"extra dots go into the state", "upvest", "A.B.C", "upvest.a.b_c"},
		{"star", "upvest", "*", "upvest._.unknown"},
		{"gt", "upvest", ">", "upvest._.unknown"},
		{"wildcards", "upvest", "*.>", "upvest._._"},
		{"wildcards inside tokens", "upvest", "OR*DER.FIL>LED", "upvest.or_der.fil_led"},
		{"spaces", "upvest", "ORDER FILLED.NEW STATE", "upvest.order_filled.new_state"},
		{"tab cr lf", "upvest", "A\tB.C\r\nD", "upvest.a_b.c__d"},
		{"nul and del", "upvest", "A\x00.B\x7f", "upvest.a_.b_"},
		{"unicode one underscore per rune", "upvest", "ÖRDER.FÏLLED", "upvest._rder.f_lled"},
		{"emoji", "upvest", "🚀.✓", "upvest._._"},
		{"invalid utf-8 one underscore per byte", "upvest", "\xff\xfe.A", "upvest.__.a"},
		{"punctuation kept", "upvest", "A-B.C_D$E", "upvest.a-b.c_d$e"},
		{"long tokens cut", "upvest", long + "." + long, "upvest." + strings.Repeat("a", 64) + "." + strings.Repeat("a", 64)},
		{"long unicode cut", "upvest", strings.Repeat("é", 100), "upvest." + strings.Repeat("_", 64) + ".unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := subjects.For(tt.prefix, tt.eventType); got != tt.want {
				t.Errorf("For(%q, %q) = %q, want %q", tt.prefix, tt.eventType, got, tt.want)
			}
		})
	}
}

func TestFamily(t *testing.T) {
	tests := []struct{ eventType, want string }{
		{"ORDER.FILLED", "order"},
		{"USER_CHECK.PASSED", "user_check"},
		{"ORDER", "order"},
		{"", "unknown"},
		{".FILLED", "unknown"},
		{"*>.X", "__"},
		{strings.Repeat("B", 200), strings.Repeat("b", 64)},
	}
	for _, tt := range tests {
		if got := subjects.Family(tt.eventType); got != tt.want {
			t.Errorf("Family(%q) = %q, want %q", tt.eventType, got, tt.want)
		}
	}
}

func TestEventType(t *testing.T) {
	tests := []struct{ eventType, want string }{
		{"ORDER.FILLED", "co.upvest.order.filled"},
		{"USER_CHECK.PASSED", "co.upvest.user_check.passed"},
		{"ORDER", "co.upvest.order.unknown"},
		{"A.B.C", "co.upvest.a.b_c"},
		{"", "co.upvest.unknown.unknown"},
	}
	for _, tt := range tests {
		if got := subjects.EventType(tt.eventType); got != tt.want {
			t.Errorf("EventType(%q) = %q, want %q", tt.eventType, got, tt.want)
		}
	}
}

func TestDeadLetterAndStream(t *testing.T) {
	for _, prefix := range []string{"upvest", "acme.prod.upvest"} {
		dl := subjects.DeadLetter(prefix)
		if want := prefix + "._deadletter"; dl != want {
			t.Errorf("DeadLetter(%q) = %q, want %q", prefix, dl, want)
		}
		stream := subjects.Stream(prefix)
		if want := prefix + ".>"; stream != want {
			t.Errorf("Stream(%q) = %q, want %q", prefix, stream, want)
		}
		if !server.IsValidPublishSubject(dl) {
			t.Errorf("DeadLetter(%q) = %q is not a valid publish subject", prefix, dl)
		}
		if !server.IsValidSubject(stream) {
			t.Errorf("Stream(%q) = %q is not a valid subject", prefix, stream)
		}
		if !server.SubjectMatchesFilter(dl, stream) {
			t.Errorf("DeadLetter(%q) = %q is outside %q", prefix, dl, stream)
		}
		// A dead letter has one token after the prefix, an event two: they
		// can never be the same subject.
		ev := subjects.For(prefix, "_DEADLETTER")
		if ev == dl {
			t.Errorf("For(%q, %q) = %q, the dead-letter subject", prefix, "_DEADLETTER", ev)
		}
	}
}

func TestValidPrefix(t *testing.T) {
	tests := []struct {
		prefix string
		want   bool
	}{
		{"upvest", true},
		{"acme.prod.upvest", true},
		{"Upvest-1_x", true},
		{"", false},
		{".", false},
		{"upvest.", false},
		{".upvest", false},
		{"a..b", false},
		{"*", false},
		{">", false},
		{"up*vest", false},
		{"up>vest", false},
		{"up vest", false},
		{"up\tvest", false},
		{"up\x00vest", false},
		{"upvést", false},
	}
	for _, tt := range tests {
		if got := subjects.ValidPrefix(tt.prefix); got != tt.want {
			t.Errorf("ValidPrefix(%q) = %v, want %v", tt.prefix, got, tt.want)
		}
		// Every valid prefix is a literal subject to nats-server too.
		if tt.want && !server.IsValidPublishSubject(tt.prefix) {
			t.Errorf("ValidPrefix(%q) = true, but nats-server rejects it as a publish subject", tt.prefix)
		}
	}
}

// TestForKeepsValidLowerCase checks that a type whose family and state are
// already lower-case, in-alphabet tokens maps onto itself.
func TestForKeepsValidLowerCase(t *testing.T) {
	families := []string{"order", "user_check", "account_group", "a", "x-1", "$sys", strings.Repeat("z", 64)}
	states := []string{"filled", "passed", "active", "b", "~!@#%^&()", strings.Repeat("q", 64)}
	for _, family := range families {
		for _, state := range states {
			eventType := family + "." + state
			if got, want := subjects.For("upvest", eventType), "upvest."+eventType; got != want {
				t.Errorf("For(%q, %q) = %q, want %q", "upvest", eventType, got, want)
			}
			if got, want := subjects.EventType(eventType), "co.upvest."+eventType; got != want {
				t.Errorf("EventType(%q) = %q, want %q", eventType, got, want)
			}
		}
	}
}

// seeds are real Upvest types and hostile inputs for FuzzFor.
var seeds = []string{
	"ORDER.FILLED", "USER_CHECK.PASSED", "ACCOUNT_GROUP.ACTIVE", "ORDER_CANCELLATION.CONFIRMED",
	"INTRADAY_ACCOUNT_VALUATION.CREATED", "REBALANCING_EXECUTION_ORDER.NEW", "TAX_EXEMPTION.UPDATED",
	"ORDER", "a.b.c", "*", ">", "", ".", "...", "*.>", "> .*",
	"ÖRDER.FÏLLED", "🚀.🚀", "\xff\xfe\xfd", "\x00.\x01", "A\tB.C\r\nD", "\x7f.\u00a0",
	"\u2028.\u2029", "\u200b.\ufeff", strings.Repeat("A.", 100),
}

func FuzzFor(f *testing.F) {
	prefixes := []string{"upvest", "acme.prod.upvest", "Tenant-1"}
	for i, s := range seeds {
		f.Add(prefixes[i%len(prefixes)], s)
	}
	f.Add("up vest", "ORDER.FILLED") // an invalid prefix: must not panic
	f.Fuzz(func(t *testing.T, prefix, eventType string) {
		got := subjects.For(prefix, eventType)
		ceType := subjects.EventType(eventType)
		family := subjects.Family(eventType)
		if !subjects.ValidPrefix(prefix) {
			return // no promise beyond not panicking
		}
		if !server.IsValidPublishSubject(prefix) {
			t.Fatalf("ValidPrefix(%q) = true, but nats-server rejects it as a publish subject", prefix)
		}
		if !server.IsValidPublishSubject(got) {
			t.Fatalf("For(%q, %q) = %q, not a valid publish subject", prefix, eventType, got)
		}
		if stream := subjects.Stream(prefix); !server.SubjectMatchesFilter(got, stream) {
			t.Fatalf("For(%q, %q) = %q, outside %q", prefix, eventType, got, stream)
		}
		if n, want := strings.Count(got, "."), strings.Count(prefix, ".")+2; n != want {
			t.Fatalf("For(%q, %q) = %q has %d separators, want %d", prefix, eventType, got, n, want)
		}
		tail := strings.TrimPrefix(got, prefix+".")
		famTok, stateTok, _ := strings.Cut(tail, ".")
		for _, tok := range []string{famTok, stateTok} {
			if len(tok) == 0 || len(tok) > subjects.MaxTokenLen {
				t.Fatalf("For(%q, %q) = %q has token %q of length %d, want 1..%d", prefix, eventType, got, tok, len(tok), subjects.MaxTokenLen)
			}
			if tok != strings.ToLower(tok) {
				t.Fatalf("For(%q, %q) = %q has token %q that is not lower case", prefix, eventType, got, tok)
			}
		}
		if famTok != family {
			t.Fatalf("Family(%q) = %q, but For(%q, %q) = %q", eventType, family, prefix, eventType, got)
		}
		if want := "co.upvest." + tail; ceType != want {
			t.Fatalf("EventType(%q) = %q, want %q", eventType, ceType, want)
		}
		if again := subjects.For(prefix, eventType); again != got {
			t.Fatalf("For(%q, %q) = %q, then %q", prefix, eventType, got, again)
		}
	})
}

func BenchmarkFor(b *testing.B) {
	types := []string{"ORDER.FILLED", "USER_CHECK.PASSED", "INTRADAY_ACCOUNT_VALUATION.CREATED", "ÖRDER.F*LLED"}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		_ = subjects.For("upvest", types[i%len(types)])
	}
}
