// Command godwit-lun formats and inspects a Godwit cluster shared LUN (an
// image file or a block device): the volume namespace, the host leases and
// the volume leases of package cluster.
//
//	godwit-lun format FILE [--hosts N] [--sector 512|4096] [--volumes N] [--au SIZE] [--size SIZE] [--label TEXT]
//	godwit-lun ls     FILE
//	godwit-lun create FILE NAME SIZE [--host-id N] [--io-timeout DURATION]
//	godwit-lun rm     FILE NAME      [--host-id N] [--io-timeout DURATION]
//	godwit-lun hosts  FILE [--watch DURATION]
//	godwit-lun check  FILE
//
// Exit status: 0 on success, 1 on failure (for check: when the LUN is not
// clean), 2 on bad usage.
package main

import (
	"errors"
	"fmt"
	"os"
)

func main() {
	err := run(os.Stdin, os.Stdout, os.Stderr, os.Args[1:])
	if err == nil {
		return
	}
	fmt.Fprintln(os.Stderr, "godwit-lun:", err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	os.Exit(1)
}
