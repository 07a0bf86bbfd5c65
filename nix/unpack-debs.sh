# Unpacks every .deb's data.tar into $out (no maintainer scripts, like
# third_party/debian/fetch.py --extract). Python is inside these debs, so
# this step can only use busybox.
. "$lib"
mkdir -p "$out"
for pair in $debs; do
  deb="${pair#*=}"
  member=$(ar t "$deb" | grep '^data\.tar')
  case "$member" in
    data.tar.xz) flag=-J ;;
    data.tar.gz) flag=-z ;;
    *) echo "unpack-debs: ${pair%%=*}: unsupported member '$member'" >&2; exit 1 ;;
  esac
  ar p "$deb" "$member" | tar -x $flag -o -f - -C "$out"
done
