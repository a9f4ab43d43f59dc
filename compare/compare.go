// Package compare decides how two HTTP responses to the same request differ:
// status, selected headers, and bodies (decoded by Content-Encoding, JSON
// compared structurally, anything else as text or bytes). It also learns
// noise: JSON paths whose values vary between responses that should be
// identical. Everything here is pure and deterministic.
package compare

// Response is one captured half: what the primary or the shadow answered.
type Response struct {
	Status  int
	Headers map[string]string // lower-case names; the first value of each
	Body    []byte            // as received: still encoded per Content-Encoding
	// Trailers are the response trailers, lower-case names, first value of
	// each; nil when there were none. Only gRPC's status is read from
	// them (into GRPCStatus and GRPCMessage, by the pairer).
	Trailers map[string]string
	// GRPCStatus is a gRPC answer's status by name ("OK", "NOT_FOUND"),
	// "" for anything else; GRPCMessage its grpc-message. A differing
	// gRPC status is the finding, as a differing HTTP status is.
	GRPCStatus, GRPCMessage string
}

// Kind is what sort of difference a Difference is.
type Kind string

const (
	Changed     Kind = "changed"      // same path and JSON type, different value
	Added       Kind = "added"        // only the shadow has the path
	Removed     Kind = "removed"      // only the primary has the path
	TypeChanged Kind = "type_changed" // same path, different JSON type
	Status      Kind = "status"       // HTTP status differs, Path "status"; or gRPC status, Path "grpc-status"
	Header      Kind = "header"       // a compared header differs; Path "header:<name>"
	Body        Kind = "body"         // non-JSON bodies differ; Path "body"
	// Undecodable: a side's body does not decode as its Content-Encoding
	// says (corrupt or truncated); Path "body", each excerpt says why or
	// "(decodes)". The bodies are not compared.
	Undecodable Kind = "undecodable"
)

// Difference is one place where the shadow's response differs from the
// primary's.
type Difference struct {
	// Path is where, concretely: "$.items[3].price", "status",
	// "header:content-type", "body".
	Path string
	// Pattern is Path with array indices replaced by [*] ("$.items[*].price"):
	// the unit differences are counted, reported and learned as noise by.
	Pattern string
	Kind    Kind
	// Primary and Shadow are short excerpts (at most MaxExcerpt bytes, JSON
	// text for JSON values) of each side's value; "" when the side has none.
	// Values of redacted fields are replaced by Redacted.
	Primary, Shadow string
}

// MaxExcerpt bounds Difference.Primary and Difference.Shadow.
const MaxExcerpt = 120

// Redacted replaces the value of a redacted field or header in excerpts.
const Redacted = "[redacted]"

// Result is the comparison of one pair.
type Result struct {
	// Differences sorted by Path; empty means the responses match under the
	// rules.
	Differences []Difference
	// Skipped is non-empty when the bodies could not be compared, saying
	// why per side: a body too large decoded, an unsupported coding, or
	// one that does not decode (then Differences holds an Undecodable
	// difference too, so the pair is never a match). Status and headers
	// are still compared.
	Skipped string
	// Marks are the differences that are only shadowlab's own marks
	// (wire.Marks) echoed back by the shadow in its body: a JSON member
	// named after a mark header that only the shadow's answer has. The
	// shadow received exactly the primary's request plus those marks, so
	// they are explained, not counted in Differences.
	Marks []Difference
}

// NoisePath is a JSON path (a Pattern) learned as noise on a route: its value
// varies between responses of one service to identical requests, so a
// difference there says nothing about the shadow.
type NoisePath struct {
	Pattern  string
	Varied   int // self-comparisons in which the value differed
	Compared int // self-comparisons that saw the path on either side

	// Kinds are the kinds of difference at Pattern that are noise, sorted:
	// changed and type_changed when the value varies, added and removed
	// when the presence does, header for a header. A difference is noise
	// when its Pattern is listed with its Kind (Learner.IsNoiseDiff): a
	// field whose value is a timestamp but that the shadow dropped is
	// still a difference.
	Kinds []Kind
}
