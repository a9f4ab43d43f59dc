package wire

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
)

// ReportLine is one line of the plugin's outcome report: the admission
// counts of one route and key since the plugin's previous report. The body
// of a report (POST ReportPath, content-type ReportContentType) is one JSON
// object per line, sorted by route then key:
//
//	{"route":"r","key":"k","admitted":N,"delayed":N,"rejected":N,"observed_delay":N,"observed_reject":N,"abandoned":N,"fail_open":N,"delay_buckets":[i,n,...],"delay_sum_ms":N}
//
// delay_buckets lists the non-empty buckets of Counts.DelayBuckets as
// pairs, bucket index then count, indexes increasing: a key's waits fall
// in a few of its hundred buckets, so a line stays about 200 bytes.
type ReportLine struct {
	Route string // the route of the budget key; never ""
	Key   string // the key header's value; "" when the budget is per route
	Counts
}

// countFields are the scalar fields of Counts in report order.
var countFields = [...]string{"admitted", "delayed", "rejected", "observed_delay", "observed_reject", "abandoned", "fail_open"}

func (c *Counts) scalars() [len(countFields)]*uint64 {
	return [...]*uint64{&c.Admitted, &c.Delayed, &c.Rejected, &c.ObservedDelay, &c.ObservedReject, &c.Abandoned, &c.FailOpen}
}

// AppendReportLine appends one line of a report (with its newline).
// (Loops over tables, not one call per field: on wasm every inlined append
// is code V8 compiles.)
func AppendReportLine(b []byte, route, key string, c *Counts) []byte {
	b = append(b, `{"route":`...)
	b = appendJSONString(b, route)
	b = append(b, `,"key":`...)
	b = appendJSONString(b, key)
	for i, n := range c.scalars() {
		b = append(b, ',', '"')
		b = append(b, countFields[i]...)
		b = append(b, '"', ':')
		b = strconv.AppendUint(b, *n, 10)
	}
	b = append(b, `,"delay_buckets":[`...)
	sep := ""
	for i, n := range c.DelayBuckets {
		if n == 0 {
			continue
		}
		b = append(b, sep...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, ',')
		b = strconv.AppendUint(b, n, 10)
		sep = ","
	}
	b = append(b, `],"delay_sum_ms":`...)
	b = strconv.AppendUint(b, c.DelaySumMs, 10)
	return append(b, "}\n"...)
}

// ParseReport reads a report body. It is all or nothing: every field of
// every line is required, nothing else is allowed, and the first bad line
// is an error naming it. Blank lines are skipped; a body without a line is
// an error.
func ParseReport(body []byte) ([]ReportLine, error) {
	var out []ReportLine
	for n := 1; len(body) > 0; n++ {
		line := body
		if i := bytes.IndexByte(body, '\n'); i >= 0 {
			line, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		l, err := parseReportLine(line)
		if err != nil {
			return nil, errors.New("line " + strconv.Itoa(n) + ": " + err.Error())
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, errors.New("no report lines")
	}
	return out, nil
}

func parseReportLine(line []byte) (ReportLine, error) {
	var l ReportLine
	values, err := parseFlatObject(line)
	if err != nil {
		return l, err
	}
	var missing, problems []string
	take := func(name string) (jsonValue, bool) {
		v, ok := values[name]
		if !ok {
			missing = append(missing, name)
		}
		delete(values, name)
		return v, ok
	}
	str := func(name string, dst *string) {
		if v, ok := take(name); ok {
			if !v.isText {
				problems = append(problems, name+" must be a string")
			}
			*dst = v.str
		}
	}
	str("route", &l.Route)
	str("key", &l.Key)
	num := func(name, lit string, dst *uint64) {
		n, err := strconv.ParseUint(lit, 10, 64)
		if err != nil {
			problems = append(problems, name+" must be a whole number >= 0 (got "+strconv.Quote(lit)+")")
		}
		*dst = n
	}
	scalars := l.scalars()
	for i, name := range countFields {
		if v, ok := take(name); ok {
			if v.isText || v.isList {
				problems = append(problems, name+" must be a whole number >= 0")
				continue
			}
			num(name, v.lit, scalars[i])
		}
	}
	if v, ok := take("delay_buckets"); ok {
		switch {
		case !v.isList:
			problems = append(problems, "delay_buckets must be an array")
		case len(v.list)%2 != 0:
			problems = append(problems, "delay_buckets must be pairs of bucket index and count (got "+strconv.Itoa(len(v.list))+" numbers)")
		default:
			last := -1
			for j := 0; j < len(v.list); j += 2 {
				i, err := strconv.Atoi(v.list[j])
				if err != nil || i <= last || i >= len(l.DelayBuckets) {
					problems = append(problems, "delay_buckets: bucket index "+strconv.Quote(v.list[j])+" must be a whole number above the previous one and below "+strconv.Itoa(len(l.DelayBuckets)))
					break
				}
				last = i
				num("delay_buckets", v.list[j+1], &l.DelayBuckets[i])
			}
		}
	}
	if v, ok := take("delay_sum_ms"); ok {
		if v.isText || v.isList {
			problems = append(problems, "delay_sum_ms must be a whole number >= 0")
		} else {
			num("delay_sum_ms", v.lit, &l.DelaySumMs)
		}
	}
	for name := range values {
		problems = append(problems, "unknown field "+strconv.Quote(name))
	}
	if len(missing) > 0 {
		problems = append(problems, "missing "+strings.Join(missing, ", "))
	}
	if len(problems) == 0 && l.Route == "" {
		problems = append(problems, "route is empty")
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return l, errors.New(strings.Join(problems, ", "))
	}
	return l, nil
}
