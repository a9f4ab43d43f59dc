package backend

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// API is a small billing API, answered the same way by legacy and
// candidate except for the seeded differences below, and with noise in both
// (fields that differ on every answer, even of one service to one request).
//
// Endpoints (n is the last path segment, a number; anything else is 0):
//
//	/billing/records/{n}  {"record": {"id", "amount", "currency", "lines": [...]}, "generated_at", "request_uuid"}
//	/orders/{n}           {"order": {"id", "total", "status"}, "generated_at", "nonce"}
//	/users/{n}            {"user": {"id", "name", "plan", "ssn"}, "generated_at"}
//	/large/{n}            {"blob": "<n bytes>"}, for body-size limits
//	/gz/<any of the above> the same answer, gzip-encoded (Content-Encoding: gzip)
//	anything else         {"path", "generated_at"}
//
// Noise, in both services: generated_at (the time of the answer),
// request_uuid and nonce (random per answer).
//
// Seeded differences, in the candidate only (SeededDifferences lists them):
//
//  1. /billing/records/{n}, n % 4 == 0: "currency" renamed "currency_code";
//  2. /billing/records/{n}: amount + 0.0004, within a numeric tolerance of
//     0.001 (not a difference when the route sets it);
//  3. /orders/{n}, n % 3 == 0: total × 1.02, beyond any small tolerance;
//  4. /orders/{n}: an extra field "order.priority";
//  5. /users/{n}, n % 10 == 7: status 404 instead of 200;
//  6. /users/{n}, n % 10 == 3: "ssn" zeroed (a secret: a policy should redact it);
//  7. /orders/{n}: 25 ms slower.
type API struct {
	Candidate bool
}

// SeededDifference documents one difference the candidate carries, for
// the demo and the end-to-end tests to check the report against.
type SeededDifference struct {
	Route, Pattern, Kind string
	Applies              func(n int) bool // which requests carry it
}

// SeededDifferences are the candidate's differences as a report should
// show them (route names of the demo policy).
var SeededDifferences = []SeededDifference{
	{"billing-records", "$.record.currency", "removed", func(n int) bool { return n%4 == 0 }},
	{"billing-records", "$.record.currency_code", "added", func(n int) bool { return n%4 == 0 }},
	{"orders", "$.order.total", "changed", func(n int) bool { return n%3 == 0 }},
	{"orders", "$.order.priority", "added", func(int) bool { return true }},
	{"users", "status", "status", func(n int) bool { return n%10 == 7 }},
	{"users", "$.user.ssn", "changed", func(n int) bool { return n%10 == 3 }},
}

// SSNPrefix starts every legacy "ssn" value; tests look for it where no
// secret may be.
const SSNPrefix = "987-65"

// SlowerDelay is how much slower the candidate answers /orders.
const SlowerDelay = 25 * time.Millisecond

// Answer is what the API answers to one request.
type Answer struct {
	Status int
	Body   []byte // JSON, gzip-encoded when Gzip
	Gzip   bool
	Delay  time.Duration
}

// Answer returns the answer to a request.
func (a API) Answer(method, path string, now time.Time) Answer {
	if inner, ok := strings.CutPrefix(path, "/gz/"); ok {
		ans := a.Answer(method, "/"+inner, now)
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		_, _ = zw.Write(ans.Body) // writes to a bytes.Buffer do not fail
		_ = zw.Close()
		ans.Body, ans.Gzip = buf.Bytes(), true
		return ans
	}
	n := lastNumber(path)
	stamp := now.UTC().Format(time.RFC3339Nano)
	var body any
	status, delay := http.StatusOK, time.Duration(0)
	switch {
	case strings.HasPrefix(path, "/billing/records/"):
		record := map[string]any{
			"id":       n,
			"amount":   round2(12.5 * float64(n%9+1)),
			"currency": "EUR",
			"lines":    []any{map[string]any{"sku": "A-" + strconv.Itoa(n%5), "qty": n%3 + 1}, map[string]any{"sku": "B-1", "qty": 1}},
		}
		if a.Candidate {
			record["amount"] = record["amount"].(float64) + 0.0004
			if n%4 == 0 {
				record["currency_code"] = record["currency"]
				delete(record, "currency")
			}
		}
		body = map[string]any{"record": record, "generated_at": stamp, "request_uuid": randomHex(16)}
	case strings.HasPrefix(path, "/orders/"):
		order := map[string]any{"id": n, "total": round2(99.9 + float64(n)), "status": "shipped"}
		if a.Candidate {
			if n%3 == 0 {
				order["total"] = round2(order["total"].(float64) * 1.02)
			}
			order["priority"] = "normal"
			delay = SlowerDelay
		}
		body = map[string]any{"order": order, "generated_at": stamp, "nonce": randomHex(8)}
	case strings.HasPrefix(path, "/catalog/"):
		// The rewrite's catalog answers as the legacy one does, but for
		// the export it does not implement yet.
		if a.Candidate && strings.HasSuffix(path, "/export") {
			status, body = http.StatusServiceUnavailable, map[string]any{"error": "export is not implemented yet"}
			break
		}
		body = map[string]any{"item": map[string]any{"id": n, "name": fmt.Sprintf("item-%d", n), "price_cents": 100 + n}, "generated_at": stamp}
	case strings.HasPrefix(path, "/large/"):
		body = map[string]any{"blob": strings.Repeat("x", n)}
	case strings.HasPrefix(path, "/users/"):
		if a.Candidate && n%10 == 7 {
			status, body = http.StatusNotFound, map[string]any{"error": fmt.Sprintf("user %d not found", n)}
			break
		}
		user := map[string]any{"id": n, "name": fmt.Sprintf("user-%d", n), "plan": "pro", "ssn": fmt.Sprintf("%s-%04d", SSNPrefix, n)}
		if a.Candidate && n%10 == 3 {
			user["ssn"] = "000-00-0000"
		}
		body = map[string]any{"user": user, "generated_at": stamp}
	default:
		body = map[string]any{"path": path, "generated_at": stamp}
	}
	if method == http.MethodHead {
		return Answer{Status: status, Delay: delay}
	}
	b, _ := json.Marshal(body) // maps of plain values always marshal
	return Answer{Status: status, Body: b, Delay: delay}
}

func lastNumber(path string) int {
	n, _ := strconv.Atoi(path[strings.LastIndexByte(path, '/')+1:])
	return n
}

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
