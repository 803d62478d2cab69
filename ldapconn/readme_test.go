package ldapconn_test

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// The README's quickstart must be Example's body, so that what newcomers
// copy is what the tests run.
func TestReadmeShowsTheExample(t *testing.T) {
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(src)
	start := strings.Index(s, "func Example() {\n")
	end := strings.Index(s[start:], "\n}\n")
	if start < 0 || end < 0 {
		t.Fatal("no func Example in example_test.go")
	}
	body := s[start+len("func Example() {\n") : start+end]
	body = body[:strings.LastIndex(body, "\t// Output:")]
	if !strings.Contains(string(readme), "func main() {\n"+body) {
		t.Fatalf("README.md's quickstart is not Example's body:\n%s", body)
	}
	// The front door: a user imports ldapconn, and ldaptest for the
	// embedded server, and nothing else that is not the standard library.
	q := string(readme)[strings.Index(string(readme), "```go\npackage main"):]
	q = q[:strings.Index(q, "func main()")]
	var imports []string
	for _, line := range strings.Split(q, "\n") {
		if line = strings.TrimSpace(line); strings.HasPrefix(line, `"`) && strings.Contains(line, ".") {
			imports = append(imports, line)
		}
	}
	if want := []string{`"github.com/fairpool/ldappool/ldapconn"`, `"github.com/fairpool/ldappool/ldaptest"`}; !slices.Equal(imports, want) {
		t.Fatalf("the quickstart imports %v; want %v only", imports, want)
	}
}
