// Package configtest helps tests that need the relay's configuration. It
// touches no process state, so tests using it may run in parallel.
package configtest

import (
	"slices"
	"strings"
	"testing"

	"github.com/upvest-relay/upvest-relay/config"
)

// Load returns config.FromEnviron of Env(env...), failing the test if it
// is refused.
func Load(t testing.TB, env ...string) config.Config {
	t.Helper()
	c, err := config.FromEnviron(Env(env...))
	if err != nil {
		t.Fatalf("configtest.Load: %v", err)
	}
	return c
}

// Env returns env, "NAME=value" entries, keeping of a name given more than
// once only its last value, as successive assignments would leave an
// environment: Env(base..., "RELAY_X=override") overrides. The result is
// what a command's environment or config.FromEnviron takes.
func Env(env ...string) []string {
	out := make([]string, 0, len(env))
	seen := make(map[string]bool, len(env))
	for _, kv := range slices.Backward(env) {
		name, _, _ := strings.Cut(kv, "=")
		if !seen[name] {
			seen[name] = true
			out = append(out, kv)
		}
	}
	slices.Reverse(out)
	return out
}
