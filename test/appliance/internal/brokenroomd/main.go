// Command brokenroomd stands in for roomd in the release that the
// appliance tier installs to see it rolled back: a daemon that cannot
// start, as a release with a bad binary or a configuration it rejects
// would be.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "brokenroomd: this release's room daemon cannot start (the appliance tier's bad release)")
	os.Exit(1)
}
