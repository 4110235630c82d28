"""The small world the fake Wikimedia services serve: files, people, categories, merged items.

Built from the real photos of the test faces: six people with Q-ids, P18
images and P373 Commons categories, Commons files showing the real photos,
and the traps the real data has (a rose cultivar named like an actress, a
deprecated P18, an SVG in a category, a human without photos, a person whose
photos are only in a category, a merged item, an actor whose preferred
occupation is another). Q76 (Obama) and Q6279 (Biden) are the real ids; the
others are made up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

# The thumbnail widths Wikimedia renders ($wgThumbnailSteps); other widths are rounded up.
THUMB_STEPS = (20, 40, 60, 120, 250, 330, 500, 960, 1280, 1920, 3840)


def thumb_step(width: int) -> int:
    """The standard width a request for ``width`` px gets: the next step up (the largest for more)."""
    return next((step for step in THUMB_STEPS if step >= width), THUMB_STEPS[-1])


@dataclass(frozen=True)
class FakeFile:
    """A Commons file: its title (without "File:") and the photo it shows."""

    name: str
    photo: str | None  # path under examples/faces; None for non-photos (SVG)
    license: str = "CC BY-SA 4.0"
    artist_html: str = '<a href="//commons.wikimedia.org/wiki/User:Example" title="User:Example">Example</a>'
    mime: str | None = None  # None: from the photo's extension
    credit_html: str = '<span class="int-own-work" lang="en">Own work</span>'
    restrictions: str = ""  # extmetadata Restrictions: "personality", "trademarked|personality", ...

    @property
    def title(self) -> str:
        return f"File:{self.name}"

    @property
    def key(self) -> str:
        """The name as it appears in URLs: spaces as underscores."""
        return self.name.replace(" ", "_")

    @property
    def license_url(self) -> str | None:
        """extmetadata LicenseUrl: Creative Commons licences have one, public domain has none."""
        match = re.fullmatch(r"CC (BY(?:-SA)?) (\d\.\d)", self.license)
        if match is None:
            return None
        return f"https://creativecommons.org/licenses/{match.group(1).lower()}/{match.group(2)}"

    @property
    def mime_type(self) -> str:
        if self.mime:
            return self.mime
        return "image/png" if (self.photo or "").lower().endswith(".png") else "image/jpeg"


@dataclass(frozen=True)
class FakeEntity:
    qid: str
    label: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    instance_of: str = "Q5"  # Q5 = human
    images: tuple[str, ...] = ()  # P18, normal rank
    preferred_images: tuple[str, ...] = ()  # P18, preferred rank (listed after the normal ones)
    deprecated_images: tuple[str, ...] = ()  # P18, deprecated rank (listed first)
    category: str | None = None  # P373
    occupations: tuple[str, ...] = ()  # P106, normal rank
    preferred_occupations: tuple[str, ...] = ()  # P106, preferred rank (wdt:P106 then holds only these)
    sitelinks: int = 0

    def truthy_occupations(self) -> tuple[str, ...]:
        """What ``wdt:P106`` gives: the preferred statements if any, else the normal ones."""
        return self.preferred_occupations or self.occupations


_SOUZA = '<a href="https://en.wikipedia.org/wiki/Pete_Souza" class="extiw">Pete Souza</a>'
FILES: tuple[FakeFile, ...] = (
    FakeFile("President Barack Obama.jpg", "obama/obama.jpg", "Public domain", _SOUZA),
    FakeFile("Barack Obama 2012.jpg", "obama/obama2.jpg", "Public domain", _SOUZA),
    FakeFile(
        "Barack Obama speaking.jpg",
        "obama/obama3.jpg",
        "CC BY 2.0",
        '<bdi><a href="https://www.flickr.com/people/x">Gage Skidmore</a></bdi> from Peoria, AZ',
    ),
    FakeFile("Obama 2013 portrait.jpg", "obama/obama4.jpg"),
    FakeFile("Barack Obama low resolution.jpg", "obama/obama-240p.jpg"),  # the deprecated P18
    FakeFile("Barack Obama signature.svg", None, "Public domain", "Barack Obama", "image/svg+xml"),
    FakeFile("Obama and Biden 2009.jpg", "group/biden-and-obama.jpg", "Public domain", _SOUZA),
    FakeFile("Obama, Biden and a staffer.jpg", "group/obama-biden-and-one-more.jpg"),
    FakeFile(
        "Joe Biden presidential portrait.jpg", "biden/biden.jpg", "Public domain", "Adam Schultz &amp; the White House"
    ),
    FakeFile("Joe Biden 2013.jpg", "biden/biden2.jpg"),
    FakeFile("Kit Harington 2012.jpg", "kit_harington/kit-harington1.jpg", "CC BY-SA 3.0", restrictions="personality"),
    FakeFile("Kit Harington at Comic-Con.jpg", "kit_harington/kit-harington2.jpg"),
    FakeFile("Kit Harington 2016.jpg", "kit_harington/kit-harington3.jpg"),
    FakeFile("Kit Harington and Rose Leslie.jpg", "group/kit-harington-and-rose-leslie.jpg"),
    FakeFile("Rose Leslie 2014.jpg", "rose_leslie/rose-leslie1.jpg", "CC BY 2.0"),
    FakeFile("Rose Leslie 2019.jpg", "rose_leslie/rose-leslie2.jpg"),
    # No Artist field: the credit line names who to credit.
    FakeFile(
        "Lin-Manuel Miranda.png",
        "lin_manuel_miranda/lin-manuel-miranda.png",
        "CC BY 4.0",
        "",
        credit_html='<a href="https://www.flickr.com/photos/x/1">Flickr</a>: Gage Skidmore',
    ),
    FakeFile("Alex Lacamoire 2016.jpg", "alex_lacamoire/alex-lacamoire1.jpg"),
    FakeFile("Alex Lacamoire at the piano.jpg", "alex_lacamoire/alex-lacamoire2.jpg"),
    FakeFile("Alex Lacamoire.png", "alex_lacamoire/alex-lacamoire3.png"),
)

CATEGORIES: dict[str, tuple[str, ...]] = {
    "Barack Obama": (
        "Barack Obama 2012.jpg",
        "Barack Obama signature.svg",
        "Barack Obama speaking.jpg",
        "Obama 2013 portrait.jpg",
        "Obama and Biden 2009.jpg",
        "President Barack Obama.jpg",
    ),
    "Joe Biden": ("Joe Biden 2013.jpg", "Obama and Biden 2009.jpg", "Obama, Biden and a staffer.jpg"),
    "Kit Harington": ("Kit Harington at Comic-Con.jpg", "Kit Harington 2016.jpg", "Kit Harington and Rose Leslie.jpg"),
    "Rose Leslie": ("Kit Harington and Rose Leslie.jpg", "Rose Leslie 2019.jpg"),
    "Alex Lacamoire": ("Alex Lacamoire 2016.jpg", "Alex Lacamoire at the piano.jpg", "Alex Lacamoire.png"),
}

ACTOR, FILM_ACTOR, TV_ACTOR = "Q33999", "Q10800557", "Q10798782"
SINGER, MUSICIAN, COMPOSER = "Q177220", "Q639669", "Q36834"
POLITICIAN, LAWYER, FOOTBALLER = "Q82955", "Q40348", "Q937857"

ENTITIES: tuple[FakeEntity, ...] = (
    # Order = the search engine's relevance order for a matching query.
    FakeEntity("Q4000001", "Rose Leslie", "rose cultivar", instance_of="Q4886", sitelinks=2),
    FakeEntity(
        "Q76",
        "Barack Obama",
        "president of the United States from 2009 to 2017",
        aliases=("Obama", "Barack Hussein Obama II"),
        images=("President_Barack_Obama.jpg",),
        deprecated_images=("Barack Obama low resolution.jpg",),
        category="Barack Obama",
        occupations=(POLITICIAN, LAWYER),
        sitelinks=330,
    ),
    FakeEntity(
        "Q13133",
        "Michelle Obama",
        "first lady of the United States from 2009 to 2017",
        occupations=(LAWYER,),
        sitelinks=150,
    ),
    FakeEntity(
        "Q6279",
        "Joe Biden",
        "president of the United States from 2021 to 2025",
        aliases=("Biden", "Joseph Robinette Biden Jr."),
        images=("Obama and Biden 2009.jpg",),
        preferred_images=("Joe Biden presidential portrait.jpg",),
        category="Joe Biden",
        occupations=(POLITICIAN, LAWYER),
        sitelinks=250,
    ),
    FakeEntity(
        "Q4000002",
        "Kit Harington",
        "English actor",
        aliases=("Christopher Catesby Harington",),
        images=("Kit Harington 2012.jpg",),
        category="Kit Harington",
        occupations=(FILM_ACTOR, TV_ACTOR),
        sitelinks=90,
    ),
    FakeEntity(
        "Q4000003",
        "Rose Leslie",
        "Scottish actress",
        images=("Rose Leslie 2014.jpg",),
        category="Rose Leslie",
        occupations=(TV_ACTOR,),
        sitelinks=60,
    ),
    FakeEntity(
        "Q4000004",
        "Lin-Manuel Miranda",
        "American actor, composer and playwright",
        aliases=("Lin Manuel Miranda",),
        images=("Lin-Manuel Miranda.png",),
        occupations=(ACTOR, COMPOSER, SINGER),
        sitelinks=80,
    ),
    FakeEntity(
        "Q4000005",
        "Alex Lacamoire",
        "American music director and orchestrator",
        category="Alex Lacamoire",
        occupations=(MUSICIAN, COMPOSER),
        sitelinks=12,
    ),
    FakeEntity("Q4000006", "Jane Noimage", "person with no photo on Commons", sitelinks=3),
    # A politician first (preferred rank) and an actor too (normal rank): only a query that
    # reads normal-rank statements (p:P106/ps:P106) finds him among actors.
    FakeEntity(
        "Q4000007",
        "Arnold Example",
        "actor and politician",
        images=("Extra Person 99.jpg",),
        occupations=(FILM_ACTOR,),
        preferred_occupations=(POLITICIAN,),
        sitelinks=120,
    ),
    # Well-linked people whose files are not on this fake Commons: they fill the
    # SPARQL pages (paging, occupation filters) and look up to no photos.
    *(
        FakeEntity(
            f"Q{5000000 + i}",
            f"Extra Person {i}",
            images=(f"Extra Person {i}.jpg",),
            occupations=((FILM_ACTOR, SINGER, FOOTBALLER)[i % 3],),
            sitelinks=200 - i * 5,
        )
        for i in range(1, 31)
    ),
)


# Merged items: wbgetentities answers the old id with the target's data and ``redirects``.
REDIRECTS: dict[str, str] = {"Q4000099": "Q4000002"}  # a duplicate of Kit Harington, merged


def people_with_images(
    occupations: Iterable[str] | None = None, *, normal_rank: bool = True, floor: int = 0
) -> list[str]:
    """Q-ids the top-people query should return, in order (most sitelinks first, then by item IRI).

    ``normal_rank``: occupations read from every non-deprecated statement (as
    ``p:P106/ps:P106`` does), not only the truthy ones (``wdt:P106``).
    """
    wanted = set(occupations) if occupations is not None else None

    def has(e: FakeEntity) -> bool:
        held = set(e.truthy_occupations()) | (set(e.occupations) if normal_rank else set())
        return wanted is None or bool(wanted & held)

    people = [
        e
        for e in ENTITIES
        if e.instance_of == "Q5" and (e.images or e.preferred_images) and has(e) and e.sitelinks >= floor
    ]
    people.sort(key=lambda e: (-e.sitelinks, f"http://www.wikidata.org/entity/{e.qid}"))
    return [e.qid for e in people]
