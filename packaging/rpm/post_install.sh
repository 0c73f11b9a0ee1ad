# tandem: make systemd see the new or changed unit. The service is neither enabled nor
# started (nor restarted on upgrade): the admin decides when a node joins its cluster.
if [ -d /run/systemd/system ]; then systemctl daemon-reload >/dev/null 2>&1 || :; fi
exit 0
