package compare

import "testing"

func BenchmarkParse(b *testing.B) {
	p, _ := benchPair(1, 4<<10)
	var d doc
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if !d.parse(p) {
			b.Fatal("bad")
		}
	}
}
