package chirpy_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestReadmeMatchesExamples checks that each Go block of README.md is code
// of example_test.go, line for line (indentation and blank lines aside),
// so that the README shows code the tests run.
func TestReadmeMatchesExamples(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	examples, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	var source []string
	for _, line := range strings.Split(string(examples), "\n") {
		if !strings.HasSuffix(line, "// not in README") {
			source = appendCode(source, line)
		}
	}
	blocks := regexp.MustCompile("(?s)```go\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 4 {
		t.Fatalf("README.md has %d Go blocks; expected the examples", len(blocks))
	}
	for _, block := range blocks {
		var code []string
		for _, line := range strings.Split(block[1], "\n") {
			code = appendCode(code, line)
		}
		if len(code) > 0 && !contains(source, code) {
			t.Errorf("this README.md block is not in example_test.go:\n%s", block[1])
		}
	}
}

func appendCode(lines []string, line string) []string {
	if line = strings.TrimSpace(line); line != "" {
		lines = append(lines, line)
	}
	return lines
}

// contains reports whether part occurs in whole as a run of lines.
func contains(whole, part []string) bool {
	for i := range whole {
		if len(whole)-i >= len(part) && slices.Equal(whole[i:i+len(part)], part) {
			return true
		}
	}
	return false
}
