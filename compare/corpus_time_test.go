package compare

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCorpusTimes(t *testing.T) {
	dir := os.Getenv("CORPUS")
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	rules := fuzzRules(t)
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines := strings.Split(string(b), "\n")
		var args []string
		for _, l := range lines[1:] {
			if l != "" {
				args = append(args, l)
			}
		}
		a := unq(t, args[0])
		bb := unq(t, args[1])
		start := time.Now()
		for _, r := range rules {
			Compare(jsonResp(string(a)), jsonResp(string(bb)), r)
			reencoded(a)
		}
		if d := time.Since(start); d > 50*time.Millisecond {
			t.Logf("%s: %v (%d, %d bytes)", filepath.Base(f), d, len(a), len(bb))
		}
	}
}

func unq(t *testing.T, s string) []byte {
	s = strings.TrimPrefix(s, "[]byte(")
	s = strings.TrimSuffix(s, ")")
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(u)
}
