# tools/wheel_urls.py --check on the image's Python: every wheel Nix fetches
# is one requirements_lock.txt pins (offline; no wheelhouse in the sandbox).
. "$lib"
HOME="$TMPDIR" py "$src/tools/wheel_urls.py" --check
echo ok > "$out"
