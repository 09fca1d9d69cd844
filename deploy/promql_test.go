package deploy

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// query is one PromQL expression found in the dashboard or the rules, with
// what it names.
type query struct {
	where  string   // e.g. "dashboard panel \"CPU\"" or "rule RelayDown"
	expr   string   // the PromQL as written
	legend string   // Grafana legendFormat, if any
	refs   []ref    // metric selectors, in order
	groups []string // labels in by/without/on/ignoring/group_* clauses
}

// ref is a metric name and the label names its selector matches on.
type ref struct {
	metric string
	labels []string
}

var (
	// Literals and Grafana variables that carry no metric name.
	stringLit   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	rangeLit    = regexp.MustCompile(`\[[^\]]*\]`)
	grafanaVar  = regexp.MustCompile(`\$\{?\w+\}?`)
	selectorLit = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}`)
	matcherName = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	grouping    = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	token       = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*|[0-9][0-9a-zA-Z_.]*(?:[eE][+-]?[0-9]+)?|\S`)
	labelValues = regexp.MustCompile(`^\s*label_values\(\s*(?:(.*),)?\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$`)
	legendLabel = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// keywords are PromQL words that are not metric names when they are not
// followed by "(" (functions and aggregations always are, once grouping
// clauses are cut out).
var keywords = map[string]bool{
	"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"inf": true, "nan": true, "Inf": true, "NaN": true,
}

// parsePromQL finds the metric names in expr and the labels it relies on.
// It is deliberately small: strings, ranges and Grafana variables are cut
// out; name{...} is a selector; grouping clauses list labels; every other
// identifier not followed by "(" and not a keyword is a metric name.
func parsePromQL(expr string) ([]ref, []string, error) {
	s := stringLit.ReplaceAllString(expr, `""`)
	s = rangeLit.ReplaceAllString(s, " ")
	s = grafanaVar.ReplaceAllString(s, " ")

	var refs []ref
	var groups []string
	for _, m := range grouping.FindAllStringSubmatch(s, -1) {
		for _, l := range strings.Split(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				groups = append(groups, l)
			}
		}
	}
	s = grouping.ReplaceAllString(s, " ")

	// Selectors with braces: the name (if any) and its matchers' labels.
	for _, m := range selectorLit.FindAllStringSubmatch(s, -1) {
		if m[1] == "" {
			return nil, nil, fmt.Errorf("selector without a metric name: %q", m[0])
		}
		r := ref{metric: m[1]}
		for _, lm := range matcherName.FindAllStringSubmatch(m[2], -1) {
			r.labels = append(r.labels, lm[1])
		}
		refs = append(refs, r)
	}
	s = selectorLit.ReplaceAllString(s, " __selector__ ")

	toks := token.FindAllString(s, -1)
	for i, t := range toks {
		if t == "__selector__" || !isIdent(t) || keywords[t] {
			continue
		}
		if i+1 < len(toks) && toks[i+1] == "(" {
			continue // a function or an aggregation
		}
		if i > 0 && toks[i-1] == "offset" {
			continue
		}
		refs = append(refs, ref{metric: t})
	}
	if len(refs) == 0 {
		return nil, nil, fmt.Errorf("names no metric")
	}
	return refs, groups, nil
}

// parse fills q.refs and q.groups. A Grafana label_values(selector, label)
// query names the selector's metric and relies on label.
func (q *query) parse() error {
	expr := q.expr
	var extra []string
	if m := labelValues.FindStringSubmatch(expr); m != nil {
		expr, extra = m[1], []string{m[2]}
	}
	refs, groups, err := parsePromQL(expr)
	if err != nil {
		return err
	}
	q.refs, q.groups = refs, append(groups, extra...)
	return nil
}

func isIdent(t string) bool {
	c := t[0]
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// dashboardQueries returns every PromQL expression of the Grafana dashboard
// at path: panel targets (nested rows included) and query variables.
func dashboardQueries(t *testing.T, path string) []query {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var qs []query
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %q target %s has no expr", path, p.Title, tg.RefID)
					continue
				}
				qs = append(qs, query{where: fmt.Sprintf("panel %q", p.Title), expr: tg.Expr, legend: tg.LegendFormat})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q string
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				t.Fatalf("%s: variable %s: query is neither a string nor an object", path, v.Name)
			}
			q = obj.Query
		}
		qs = append(qs, query{where: "variable " + v.Name, expr: q})
	}
	return qs
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		RefID        string `json:"refId"`
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

// ruleQueries returns the expr of every rule in a Prometheus rules file.
// It reads the YAML line by line (the project has no YAML library): an
// expr is a plain or quoted scalar on its line, or a block scalar (| or >)
// on the more-indented lines after it. It fails when the number of exprs
// differs from the number of alert/record entries.
func ruleQueries(t *testing.T, path string) []query {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	var (
		qs    []query
		name  string
		rules int
	)
	for i := 0; i < len(lines); i++ {
		l := strings.TrimLeft(lines[i], " ")
		l = strings.TrimPrefix(l, "- ")
		if k, v, ok := strings.Cut(l, ":"); ok && (k == "alert" || k == "record") {
			name, rules = strings.TrimSpace(v), rules+1
			continue
		}
		v, ok := strings.CutPrefix(l, "expr:")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch {
		case strings.HasPrefix(v, "|") || strings.HasPrefix(v, ">"):
			indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
			var block []string
			for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent) {
				i++
				block = append(block, lines[i])
			}
			v = strings.Join(block, "\n")
		case strings.HasPrefix(v, `"`):
			u, err := strconv.Unquote(v)
			if err != nil {
				t.Fatalf("%s: rule %s: expr %s: %v", path, name, v, err)
			}
			v = u
		case strings.HasPrefix(v, "'"):
			v = strings.ReplaceAll(strings.TrimSuffix(strings.TrimPrefix(v, "'"), "'"), "''", "'")
		}
		qs = append(qs, query{where: "rule " + name, expr: v})
	}
	if len(qs) != rules || rules == 0 {
		t.Fatalf("%s: found %d exprs for %d rules", path, len(qs), rules)
	}
	return qs
}

// TestParsePromQL: the extraction finds what an expression names and
// nothing else, so the export check below can fail.
func TestParsePromQL(t *testing.T) {
	for _, tc := range []struct {
		expr    string
		metrics []string
		labels  []string // selector labels, all refs together
		groups  []string
	}{
		{
			expr:    `sum by (result) (rate(relay_packages_total{namespace=~"$namespace", result="ok"}[$__rate_interval]))`,
			metrics: []string{"relay_packages_total"},
			labels:  []string{"namespace", "result"},
			groups:  []string{"result"},
		},
		{
			expr:    `histogram_quantile(0.99, sum by (namespace, le) (rate(relay_publish_duration_seconds_bucket[5m]))) > 1e3`,
			metrics: []string{"relay_publish_duration_seconds_bucket"},
			groups:  []string{"namespace", "le"},
		},
		{
			expr:    "(sum(increase(a_total{x=\"or b_total\"}[30m])) or max(c) * 0) == 0\nand on (job) max(d * e offset 5m) == 1",
			metrics: []string{"a_total", "c", "d", "e"},
			labels:  []string{"x"},
			groups:  []string{"job"},
		},
		{
			expr:    `absent(relay_keeper_leader)`,
			metrics: []string{"relay_keeper_leader"},
		},
		{
			expr:    `rate(process_cpu_seconds_total{job=~"$job"}[$__rate_interval]) / bool go_goroutines`,
			metrics: []string{"process_cpu_seconds_total", "go_goroutines"},
			labels:  []string{"job"},
		},
	} {
		refs, groups, err := parsePromQL(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		var metrics, labels []string
		for _, r := range refs {
			metrics = append(metrics, r.metric)
			labels = append(labels, r.labels...)
		}
		slices.Sort(metrics)
		slices.Sort(labels)
		want := slices.Sorted(slices.Values(tc.metrics))
		wantLabels := slices.Sorted(slices.Values(tc.labels))
		if !slices.Equal(metrics, want) || !slices.Equal(labels, wantLabels) || !slices.Equal(groups, tc.groups) {
			t.Errorf("%s:\n got metrics %v labels %v groups %v\nwant metrics %v labels %v groups %v",
				tc.expr, metrics, labels, groups, want, wantLabels, tc.groups)
		}
	}
	for _, expr := range []string{`sum(rate({job="x"}[5m]))`, `vector(1)`, `time() - 5`} {
		if _, _, err := parsePromQL(expr); err == nil {
			t.Errorf("%s: no error, want one (no metric named by name)", expr)
		}
	}
}
