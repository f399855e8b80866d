package tbscope

import (
	"slices"
	"testing"
)

func TestCloseRunsCleanupsInReverseOnce(t *testing.T) {
	var order []int
	s := New(t)
	for i := range 3 {
		s.Cleanup(func() { order = append(order, i) })
	}
	s.Close()
	s.Close()
	if want := []int{2, 1, 0}; !slices.Equal(order, want) {
		t.Errorf("cleanups ran as %v, want %v once", order, want)
	}
}
