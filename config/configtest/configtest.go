// Package configtest sets up the process environment for tests that load
// the relay's configuration.
package configtest

import (
	"os"
	"strings"
	"testing"

	"github.com/upvest-relay/upvest-relay/config"
)

// SetEnv makes env, "NAME=value" entries, the process's only RELAY_*
// variables for the rest of the test: every other RELAY_* variable is
// unset, and t.Setenv restores them all afterwards (so no test using it
// may run in parallel).
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
