package config

import "strings"

// closest returns the variable name nearest to name by edit distance, or ""
// when none is near enough to be a likely typo: at most a third of the
// name's length after the prefix, and at most 4 edits.
func closest(name string) string {
	limit := min(4, max(1, (len(name)-len(Prefix))/3))
	best, bestD := "", limit+1
	for _, v := range variables {
		if d := editDistance(strings.ToUpper(name), v.name); d < bestD {
			best, bestD = v.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
