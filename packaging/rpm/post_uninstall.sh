# tandem: forget the removed unit. /var/lib/tandem and the `tandem` group are kept
# (RPM has no purge; remove them by hand if the node leaves for good).
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi
exit 0
