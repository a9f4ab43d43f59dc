package harness

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// ChromiumBin is the Chromium the operator page's browser tests drive:
// $CHROMIUM_BIN if set, else chromium (or chromium-browser) on PATH. A
// missing Chromium is an error, never a skip: `e2e/chromium.sh ensure`
// installs Debian's package and prints the path (`make test` runs it and
// passes CHROMIUM_BIN).
func ChromiumBin() (string, error) {
	if bin := os.Getenv("CHROMIUM_BIN"); bin != "" {
		st, err := os.Stat(bin)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("CHROMIUM_BIN=%s is not an executable file", bin)
		}
		return bin, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if bin, err := exec.LookPath(name); err == nil {
			return bin, nil
		}
	}
	return "", errors.New("no Chromium: CHROMIUM_BIN is empty and neither chromium nor chromium-browser is on PATH; " +
		"run `e2e/chromium.sh ensure` (it installs Debian's package chromium and prints the path to give as CHROMIUM_BIN), or `make test`, which does")
}
