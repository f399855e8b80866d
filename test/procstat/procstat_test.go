package procstat

import (
	"os"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	// comm with a space and a parenthesis, as WebKit's names could be.
	line := "4242 (Web (Content) x) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 12 0 98765 1000 200 18446744073709551615\n"
	st, err := Parse([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st != (Stat{PPID: 17, Comm: "Web (Content) x", Ticks: 280, Start: 98765}) {
		t.Errorf("parsed %+v", st)
	}
	for _, bad := range []string{"", "4242 comm S 1", "4242 (x) S 1 2 3"} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestTree(t *testing.T) {
	all := map[int]Stat{10: {PPID: 1}, 11: {PPID: 10}, 12: {PPID: 11}, 13: {PPID: 1}, 14: {PPID: 10}}
	got := Tree(all, 10)
	slices.Sort(got[1:])
	if !slices.Equal(got, []int{10, 11, 12, 14}) {
		t.Errorf("tree of 10: %v", got)
	}
}

func TestThisProcess(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	me, ok := all[os.Getpid()]
	if !ok || me.PPID != os.Getppid() || me.Start <= 0 {
		t.Fatalf("this process: %+v (found %v)", me, ok)
	}
	if !slices.Contains(Tree(all, os.Getppid()), os.Getpid()) {
		t.Error("this process is not in its parent's tree")
	}
}
