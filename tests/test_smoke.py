def test_the_org_fixture_builds(org):
    assert org.ravi.profile.path.startswith(org.vera.profile.path)
    assert org.ravi_open.probability == 55
