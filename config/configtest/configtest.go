// Package configtest helps tests that need the relay's configuration.
package configtest

import (
	"os"
	"strings"
	"testing"

	"github.com/upvest-relay/upvest-relay/config"
)

// Load returns config.FromEnviron of env, "NAME=value" entries over the
// defaults, and fails the test if it is refused. It touches no process
// state, so tests using it may run in parallel.
func Load(t testing.TB, env ...string) config.Config {
	t.Helper()
	c, err := config.FromEnviron(env)
	if err != nil {
		t.Fatalf("configtest.Load: %v", err)
	}
	return c
}

// SetEnv makes env, "NAME=value" entries, the process's only RELAY_*
// variables for the rest of the test: every other RELAY_* variable is
// unset, and t.Setenv restores them all afterwards (so no test using it
// may run in parallel). Use it only where the code under test reads the
// process environment itself (config.Load); otherwise prefer Load.
func SetEnv(t testing.TB, env ...string) {
	t.Helper()
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); strings.HasPrefix(name, config.Prefix) {
			t.Setenv(name, "") // to be restored after the test
			os.Unsetenv(name)
		}
	}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}
}
