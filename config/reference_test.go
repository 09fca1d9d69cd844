package config_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/upvest-relay/upvest-relay/config"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from the config package")

// referenceFile is the generated configuration reference, relative to this
// package's directory.
var referenceFile = filepath.Join("..", "docs", "configuration.md")

// TestConfigurationReferenceIsFresh fails when docs/configuration.md is not
// what Reference renders. Rewrite it with -update (or UPDATE=1).
func TestConfigurationReferenceIsFresh(t *testing.T) {
	t.Parallel()
	want := config.Reference()
	if *update || os.Getenv("UPDATE") == "1" {
		if err := os.WriteFile(referenceFile, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatalf("%v (generate it: go test ./config -run TestConfigurationReferenceIsFresh -update)", err)
	}
	if string(got) != want {
		t.Errorf("%s is stale; regenerate it: go test ./config -run TestConfigurationReferenceIsFresh -update", referenceFile)
	}
}

// TestReferenceListsEveryVariable checks the reference against the list
// Load knows, so that a variable cannot be parsed but undocumented.
func TestReferenceListsEveryVariable(t *testing.T) {
	t.Parallel()
	ref := config.Reference()
	for _, name := range config.Names() {
		if !strings.Contains(ref, "| `"+name+"` |") {
			t.Errorf("Reference() has no row for %s", name)
		}
	}
}
