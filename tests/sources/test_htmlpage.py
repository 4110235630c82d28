"""parse_page: images (largest candidate), meta images, links, title, robots; decode_html."""

from __future__ import annotations

from sozy.sources.htmlpage import PageImage, decode_html, parse_page

PAGE = "https://celebs.example.org/people/obama.html"


def test_img_srcset_largest_and_src_fallback() -> None:
    page = parse_page(
        """<html><head><title> Barack
        Obama — Celebs </title></head><body>
        <img src="/s/320.jpg" srcset="/s/320.jpg 320w, /s/1280.jpg 1280w, /s/640.jpg 640w" alt=" Barack  Obama ">
        <img src="../plain.jpg" alt="">
        <img src="x1.jpg" srcset="x2.jpg 2x">
        <img src="data:image/gif;base64,R0lGOD" data-src="/lazy.jpg">
        <img data-srcset="/lazy-400.jpg 400w, /lazy-800.jpg 800w" src="data:image/gif;base64,R0lGOD">
        <img src="data:image/png;base64,AAAA">
        <img src="/icon.svg"><img src="/icon.SVG?v=2">
        <img>
        <img src="/s/320.jpg">
        </body></html>""",
        PAGE,
    )
    assert page.title == "Barack Obama — Celebs"
    assert page.images == [
        PageImage("https://celebs.example.org/s/1280.jpg", "Barack Obama"),
        PageImage("https://celebs.example.org/plain.jpg", None),
        PageImage("https://celebs.example.org/people/x2.jpg", None),
        PageImage("https://celebs.example.org/lazy.jpg", None),
        PageImage("https://celebs.example.org/lazy-800.jpg", None),
        PageImage("https://celebs.example.org/s/320.jpg", None),
    ]


def test_picture_sources_skip_undecodable_types() -> None:
    page = parse_page(
        """<picture>
          <source type="image/avif" srcset="/a/2000.avif 2000w">
          <source type="image/webp" srcset="/w/480.webp 480w, /w/960.webp 960w">
          <source media="(min-width: 800px)" srcset="/j/700.jpg 700w">
          <img src="/j/480.jpg" alt="On stage">
        </picture>
        <picture><img src="/solo.jpg"></picture>
        <source srcset="/outside.jpg 5000w"><img src="/after.jpg">""",
        PAGE,
    )
    assert page.images == [
        PageImage("https://celebs.example.org/w/960.webp", "On stage"),
        PageImage("https://celebs.example.org/solo.jpg", None),
        PageImage("https://celebs.example.org/after.jpg", None),
    ]


def test_open_graph_and_twitter_images() -> None:
    page = parse_page(
        """<head>
        <meta property="og:image" content="https://cdn.example.org/og.jpg">
        <meta property="og:image:alt" content="Official portrait">
        <meta property="og:image:url" content="/og-url.jpg">
        <meta name="twitter:image" content="https://cdn.example.org/og.jpg">
        <meta name="twitter:image:src" content="/tw.jpg">
        <meta property="og:title" content="OG Title">
        <meta property="og:image" content="">
        </head><body><img src="/body.jpg"></body>""",
        PAGE,
    )
    # <img> tags first, then meta images; the repeated og/twitter image once.
    assert page.images == [
        PageImage("https://celebs.example.org/body.jpg", None),
        PageImage("https://cdn.example.org/og.jpg", "Official portrait"),
        PageImage("https://celebs.example.org/og-url.jpg", None),
        PageImage("https://celebs.example.org/tw.jpg", None),
    ]
    assert page.title == "OG Title"  # no <title>: og:title


def test_links_are_resolved_deduplicated_and_filtered() -> None:
    page = parse_page(
        """<base href="https://celebs.example.org/archive/">
        <a href="a.html#bio">A</a> <a href="a.html">A again</a> <a href="#top">Top</a>
        <a href="mailto:x@example.org">Mail</a> <a href="javascript:go()">JS</a>
        <a href="https://other.example.net/">Other</a> <a rel="nofollow sponsored" href="/ad.html">Ad</a>
        <map><area href="/area.html"></map> <a>no href</a>
        <img src="pic.jpg">""",
        PAGE,
    )
    assert page.links == [
        "https://celebs.example.org/archive/a.html",
        "https://celebs.example.org/archive/",
        "https://other.example.net/",
        "https://celebs.example.org/area.html",
    ]
    assert page.images == [PageImage("https://celebs.example.org/archive/pic.jpg", None)]


def test_thumbnails_linking_to_photos_give_the_photo() -> None:
    page = parse_page(
        """<a href="/full/1.jpg?download=1"><img src="/thumb/1.jpg" alt="One"></a>
        <a href="/full/2.PNG#zoom">Full size</a>
        <a href="/page.html"><img src="/thumb/3.jpg" alt="Three"></a>
        <map><area href="/full/4.webp" alt="Four"></map>
        <a href="/full/5.jpg">unclosed""",
        PAGE,
    )
    assert page.images == [
        PageImage("https://celebs.example.org/full/1.jpg?download=1", "One"),
        PageImage("https://celebs.example.org/full/2.PNG", None),
        PageImage("https://celebs.example.org/thumb/3.jpg", "Three"),
        PageImage("https://celebs.example.org/full/4.webp", "Four"),
        PageImage("https://celebs.example.org/full/5.jpg", None),
    ]
    assert page.links == ["https://celebs.example.org/page.html"]  # photos are not pages


def test_meta_robots() -> None:
    plain = parse_page("<p>hi</p>", PAGE)
    assert plain.images_allowed and plain.links_allowed and plain.title is None
    noimage = parse_page('<meta name="robots" content="NoImageIndex, nofollow">', PAGE)
    assert not noimage.images_allowed and not noimage.links_allowed
    assert not parse_page('<meta name="robots" content="none">', PAGE).images_allowed
    assert not parse_page('<meta name="robots" content="noai">', PAGE).images_allowed
    # Our own token counts too; another bot's does not.
    assert not parse_page('<meta name="sozybot" content="noindex">', PAGE, robots_token="SozyBot").images_allowed
    assert parse_page('<meta name="googlebot" content="noindex">', PAGE, robots_token="SozyBot").images_allowed


def test_titles_inside_svg_are_not_the_page_title() -> None:
    page = parse_page("<svg><title>icon</title></svg><title>Real</title><title>Second</title>", PAGE)
    assert page.title == "Real"


def test_broken_markup_does_not_raise() -> None:
    page = parse_page('<img src="/a.jpg" alt="unclosed <div><a href="/x.html">x</a><img src=/b.jpg', PAGE)
    assert "https://celebs.example.org/a.jpg" in [i.url for i in page.images]


def test_decode_html_charsets() -> None:
    body = "<p>Beyoncé</p>".encode("latin-1")
    assert decode_html(body, "text/html; charset=ISO-8859-1") == "<p>Beyoncé</p>"
    meta = b'<meta charset="iso-8859-1">' + body
    assert decode_html(meta, "text/html").endswith("<p>Beyoncé</p>")
    assert decode_html("é".encode(), None) == "é"
    assert decode_html(b"\xff ok", "text/html; charset=no-such-charset").endswith(" ok")
