package config

import (
	"fmt"
	"regexp"
	"strings"
)

// Reference returns the configuration reference in Markdown, rendered from
// the same declarations that Load, Usage and the log view use; the
// repository's docs/configuration.md is this text, and a test keeps it so.
func Reference() string {
	var b strings.Builder
	b.WriteString(`# Configuration reference

<!-- Generated from package config by TestConfigurationReferenceIsFresh; do not edit.
     Regenerate with: go test ./config -run TestConfigurationReferenceIsFresh -update -->

The relay is configured only through environment variables named ` + "`" + Prefix + "<NAME>`" + `.
` + "`relay --help`" + ` prints the same table.

- A variable that is not set takes its default. A variable set to the empty string is
  empty, not its default; for most variables that is an error.
- An unknown ` + "`" + Prefix + "*`" + ` name is an error, reported with the closest known name
  (` + "`RELAY_LISTN_ADDR`" + ` suggests ` + "`RELAY_LISTEN_ADDR`" + `). Names without the prefix are ignored.
- The relay refuses to start on the first problem and prints one line,
  ` + "`config: RELAY_<NAME>: <what is wrong>`" + `: unknown names first, then the variables in
  the order below, then the rules that involve several variables.
- Files named by ` + "`*_FILE`" + ` variables and ` + "`RELAY_NATS_CREDS`" + ` must be readable when set;
  certificate and key pairs must match, and a CA file must hold a certificate.
- ` + "`RELAY_UPVEST_CLIENT_SECRET`" + ` is never printed or logged; the user information of URLs
  (a password, or a NATS token) is shown as ` + "`xxxxx`" + `. The relay logs its configuration at start
  in that redacted form.
- Tracing is configured with the standard OpenTelemetry ` + "`OTEL_*`" + ` variables, which this table
  does not list: it is off unless ` + "`OTEL_EXPORTER_OTLP_ENDPOINT`" + ` (or ` + "`OTEL_TRACES_EXPORTER=otlp`" + `)
  is set. See [tracing.md](tracing.md).

## Variables

| Variable | Default | Meaning |
|---|---|---|
`)
	for _, v := range variables {
		def := "(empty)"
		if v.def != "" {
			def = "`" + v.def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.name, def, mdEscape(v.desc))
	}
	b.WriteString("\n## Rules across variables\n\nChecked in this order after every variable has been read:\n\n")
	for _, r := range rules {
		fmt.Fprintf(&b, "- %s\n", mdEscape(r.desc))
	}
	return b.String()
}

var nameRE = regexp.MustCompile(`\bRELAY_[A-Z0-9_]+`)

// mdEscape keeps text from breaking a Markdown table cell and shows
// variable names as code.
func mdEscape(s string) string {
	return nameRE.ReplaceAllString(strings.ReplaceAll(s, "|", `\|`), "`$0`")
}
